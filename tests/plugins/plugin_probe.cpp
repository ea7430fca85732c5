// Drives the GridSample3D plugin's build-time API as TensorRT's builder would, without libnvinfer:
// compiled against real TensorRT headers with the plugin source included below, and only the logger
// the plugin reaches through getLogger() stood in. The static creator registration is left out (it
// needs libnvinfer's registry); the creator is used directly. Prints one line per fact, read by
// tests/plugins/test_cuda_compile.py.
#include <NvInferRuntime.h>

#undef REGISTER_TENSORRT_PLUGIN
#define REGISTER_TENSORRT_PLUGIN(name) static_assert(true, "registration needs libnvinfer")
#include "grid_sample_3d_plugin.cpp"

#include <cstdio>
#include <cstring>
#include <memory>

namespace
{

class PrintingLogger : public nvinfer1::ILogger
{
public:
    void log(Severity, nvinfer1::AsciiChar const* msg) noexcept override
    {
        std::printf("log %s\n", msg);
    }
};

using nvinfer1::DataType;

char const* typeName(DataType t)
{
    switch (t)
    {
    case DataType::kFLOAT: return "FLOAT";
    case DataType::kHALF: return "HALF";
    case DataType::kINT8: return "INT8";
    default: return "OTHER";
    }
}

nvinfer1::IPluginV3* create(facecodec::GridSample3DPluginCreator& creator, int32_t alignCorners, char const* mode,
    nvinfer1::TensorRTPhase phase)
{
    std::vector<PluginField> fields{
        PluginField{facecodec::kFIELD_ALIGN_CORNERS, &alignCorners, PluginFieldType::kINT32, 1},
        PluginField{facecodec::kFIELD_MODE, mode, PluginFieldType::kCHAR, static_cast<int32_t>(std::strlen(mode))},
    };
    PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
    return creator.createPlugin("probe", &fc, phase);
}

nvinfer1::IPluginV3OneBuild* build(nvinfer1::IPluginV3* plugin)
{
    return static_cast<nvinfer1::IPluginV3OneBuild*>(
        plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
}

// The builder asks position by position, the earlier positions already fixed.
bool accepts(nvinfer1::IPluginV3OneBuild* plugin, DataType x, DataType grid, DataType y)
{
    nvinfer1::DynamicPluginTensorDesc io[3]{};
    DataType const types[3]{x, grid, y};
    for (int32_t pos = 0; pos < 3; ++pos)
    {
        io[pos].desc.type = types[pos];
        io[pos].desc.format = nvinfer1::TensorFormat::kLINEAR;
        io[pos].desc.dims.nbDims = 5;
        if (!plugin->supportsFormatCombination(pos, io, 2, 1))
        {
            return false;
        }
    }
    return true;
}

} // namespace

extern "C" nvinfer1::ILogger* getLogger() noexcept
{
    static PrintingLogger logger;
    return &logger;
}

int main()
{
    facecodec::GridSample3DPluginCreator creator;
    for (int32_t alignCorners : {0, 1})
    {
        std::unique_ptr<nvinfer1::IPluginV3> plugin{create(creator, alignCorners, "bilinear", nvinfer1::TensorRTPhase::kBUILD)};
        char const* id = build(plugin.get())->getTimingCacheID();
        std::printf("timing_cache_id %d %s\n", alignCorners, id != nullptr ? id : "(null)");

        // What an engine deserialises: the plugin re-created from its own serialised fields.
        auto* runtime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
            plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
        std::unique_ptr<nvinfer1::IPluginV3> again{
            creator.createPlugin("probe", runtime->getFieldsToSerialize(), nvinfer1::TensorRTPhase::kRUNTIME)};
        char const* againId = again ? build(again.get())->getTimingCacheID() : nullptr;
        std::printf("deserialised_timing_cache_id %d %s\n", alignCorners, againId != nullptr ? againId : "(null)");
    }

    std::unique_ptr<nvinfer1::IPluginV3> plugin{create(creator, 0, "bilinear", nvinfer1::TensorRTPhase::kBUILD)};
    DataType const types[]{DataType::kFLOAT, DataType::kHALF, DataType::kINT8};
    for (DataType x : types)
    {
        for (DataType grid : types)
        {
            for (DataType y : types)
            {
                if (accepts(build(plugin.get()), x, grid, y))
                {
                    std::printf("accepts %s %s %s\n", typeName(x), typeName(grid), typeName(y));
                }
            }
        }
    }
    DataType out{};
    DataType const in[2]{DataType::kHALF, DataType::kFLOAT};
    int32_t const status = build(plugin.get())->getOutputDataTypes(&out, 1, in, 2);
    std::printf("output_type HALF FLOAT %d %s\n", status, typeName(out));

    std::unique_ptr<nvinfer1::IPluginV3> nearest{create(creator, 0, "nearest", nvinfer1::TensorRTPhase::kBUILD)};
    std::printf("nearest_refused %d\n", nearest == nullptr ? 1 : 0);
    return 0;
}
