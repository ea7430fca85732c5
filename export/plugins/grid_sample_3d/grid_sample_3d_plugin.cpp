#include "grid_sample_3d_plugin.h"

#include "grid_sample_3d.h"

#include <cstring>
#include <string>

using nvinfer1::DataType;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IPluginCapability;
using nvinfer1::IPluginV3;
using nvinfer1::PluginCapabilityType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;

namespace facecodec
{
namespace
{

constexpr int32_t kNB_INPUTS = 2;
constexpr int32_t kNB_OUTPUTS = 1;
constexpr int32_t kRANK = 5;

void logError(char const* what, char const* detail = "") noexcept
{
    try
    {
        // getLogger() is the logger of the builder or runtime that loaded the plugin.
        if (nvinfer1::ILogger* logger = getLogger())
        {
            logger->log(
                nvinfer1::ILogger::Severity::kERROR, (std::string(kPLUGIN_NAME) + ": " + what + detail).c_str());
        }
    }
    catch (...)
    {
    }
}

// kCHAR fields may or may not count a terminating NUL; accept both.
std::string fieldString(PluginField const& field)
{
    auto const* chars = static_cast<char const*>(field.data);
    std::string value(chars, static_cast<size_t>(field.length));
    return value.substr(0, value.find('\0'));
}

struct Attributes
{
    int32_t alignCorners{kDEFAULT_ALIGN_CORNERS};
    std::string mode{kDEFAULT_MODE};
    std::string paddingMode{kDEFAULT_PADDING_MODE};
};

// Returns an empty string on success, else what is wrong. Unknown fields are ignored so
// that a newer exporter's extra attributes do not break older plugin builds.
std::string parseFields(PluginFieldCollection const* fc, Attributes& attrs)
{
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        if (f.name == nullptr || f.data == nullptr)
        {
            continue;
        }
        if (std::strcmp(f.name, kFIELD_ALIGN_CORNERS) == 0)
        {
            if (f.type != PluginFieldType::kINT32 || f.length != 1)
            {
                return "align_corners must be one int32";
            }
            attrs.alignCorners = *static_cast<int32_t const*>(f.data);
        }
        else if (std::strcmp(f.name, kFIELD_MODE) == 0 || std::strcmp(f.name, kFIELD_PADDING_MODE) == 0)
        {
            if (f.type != PluginFieldType::kCHAR)
            {
                return std::string(f.name) + " must be a string";
            }
            (std::strcmp(f.name, kFIELD_MODE) == 0 ? attrs.mode : attrs.paddingMode) = fieldString(f);
        }
    }
    if (attrs.alignCorners != 0 && attrs.alignCorners != 1)
    {
        return "align_corners must be 0 or 1, got " + std::to_string(attrs.alignCorners);
    }
    if (attrs.mode != kDEFAULT_MODE)
    {
        return "only mode=\"bilinear\" (trilinear) is implemented, got \"" + attrs.mode + "\"";
    }
    if (attrs.paddingMode != kDEFAULT_PADDING_MODE)
    {
        return "only padding_mode=\"zeros\" is implemented, got \"" + attrs.paddingMode + "\"";
    }
    return {};
}

PluginField charField(char const* name, char const* value)
{
    return PluginField{name, value, PluginFieldType::kCHAR, static_cast<int32_t>(std::strlen(value) + 1)};
}

} // namespace

GridSample3DPlugin::GridSample3DPlugin(bool alignCorners)
    : mAlignCorners(alignCorners ? 1 : 0)
{
}

IPluginCapability* GridSample3DPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* GridSample3DPlugin::clone() noexcept
{
    try
    {
        return new GridSample3DPlugin(mAlignCorners != 0);
    }
    catch (...)
    {
        return nullptr;
    }
}

char const* GridSample3DPlugin::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* GridSample3DPlugin::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* GridSample3DPlugin::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

int32_t GridSample3DPlugin::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

int32_t GridSample3DPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || in[0].desc.dims.nbDims != kRANK
        || in[1].desc.dims.nbDims != kRANK)
    {
        logError("expects X (N, C, D, H, W) and grid (N, Do, Ho, Wo, 3)");
        return 1;
    }
    return 0;
}

bool GridSample3DPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || pos < 0 || pos >= kNB_INPUTS + kNB_OUTPUTS)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
    {
        return false;
    }
    // X decides the type and Y follows it. The grid is X's type, or fp32 under fp16 X: rounded to
    // fp16, a coordinate near the far edge of 64 voxels moves by up to 0.008 voxel.
    DataType const x = inOut[0].desc.type;
    switch (pos)
    {
    case 0: return x == DataType::kFLOAT || x == DataType::kHALF;
    case 1: return desc.type == x || (x == DataType::kHALF && desc.type == DataType::kFLOAT);
    default: return desc.type == x;
    }
}

int32_t GridSample3DPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS)
    {
        return 1;
    }
    outputTypes[0] = inputTypes[0];
    return 0;
}

int32_t GridSample3DPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t,
    DimsExprs* outputs, int32_t nbOutputs, nvinfer1::IExprBuilder&) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || inputs[0].nbDims != kRANK
        || inputs[1].nbDims != kRANK)
    {
        logError("expects X (N, C, D, H, W) and grid (N, Do, Ho, Wo, 3)");
        return 1;
    }
    if (inputs[1].d[4]->isConstant() && inputs[1].d[4]->getConstantValue() != 3)
    {
        logError("the last axis of grid must hold 3 coordinates");
        return 1;
    }
    // Y (N, C, Do, Ho, Wo): N and C from X, the sampled extent from grid; all may be dynamic.
    DimsExprs& y = outputs[0];
    y.nbDims = kRANK;
    y.d[0] = inputs[0].d[0];
    y.d[1] = inputs[0].d[1];
    y.d[2] = inputs[1].d[1];
    y.d[3] = inputs[1].d[2];
    y.d[4] = inputs[1].d[3];
    return 0;
}

char const* GridSample3DPlugin::getTimingCacheID() noexcept
{
    // Only the creation state that is not a shape or a format: the attributes. The kernel's
    // speed does not depend on align_corners, but two IDs cost nothing and stay exact.
    return mAlignCorners != 0 ? "GridSample3D_1_align_corners_1" : "GridSample3D_1_align_corners_0";
}

int32_t GridSample3DPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const*, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || in[0].dims.d[0] != in[1].dims.d[0]
        || in[1].dims.d[4] != 3)
    {
        logError("X and grid must share the batch axis, and grid must end in 3 coordinates");
        return 1;
    }
    return 0;
}

int32_t GridSample3DPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*,
    void const* const* inputs, void* const* outputs, void*, cudaStream_t stream) noexcept
{
    nvinfer1::Dims const& x = inputDesc[0].dims;
    nvinfer1::Dims const& g = inputDesc[1].dims;
    GridSample3DShape const shape{x.d[0], x.d[1], x.d[2], x.d[3], x.d[4], g.d[1], g.d[2], g.d[3]};
    bool const alignCorners = mAlignCorners != 0;

    DataType const xType = inputDesc[0].type;
    DataType const gridType = inputDesc[1].type;
    cudaError_t err = cudaErrorInvalidValue;
    if (xType == DataType::kFLOAT && gridType == DataType::kFLOAT)
    {
        err = gridSample3D(static_cast<float const*>(inputs[0]), static_cast<float const*>(inputs[1]),
            static_cast<float*>(outputs[0]), shape, alignCorners, kAUTO_CHANNELS_PER_THREAD, stream);
    }
    else if (xType == DataType::kHALF && gridType == DataType::kHALF)
    {
        err = gridSample3D(static_cast<__half const*>(inputs[0]), static_cast<__half const*>(inputs[1]),
            static_cast<__half*>(outputs[0]), shape, alignCorners, kAUTO_CHANNELS_PER_THREAD, stream);
    }
    else if (xType == DataType::kHALF && gridType == DataType::kFLOAT)
    {
        err = gridSample3D(static_cast<__half const*>(inputs[0]), static_cast<float const*>(inputs[1]),
            static_cast<__half*>(outputs[0]), shape, alignCorners, kAUTO_CHANNELS_PER_THREAD, stream);
    }
    if (err != cudaSuccess)
    {
        logError("kernel launch failed: ", cudaGetErrorString(err));
        return 1;
    }
    return 0;
}

IPluginV3* GridSample3DPlugin::attachToContext(nvinfer1::IPluginResourceContext*) noexcept
{
    return clone();
}

PluginFieldCollection const* GridSample3DPlugin::getFieldsToSerialize() noexcept
{
    mFields = {
        PluginField{kFIELD_ALIGN_CORNERS, &mAlignCorners, PluginFieldType::kINT32, 1},
        charField(kFIELD_MODE, kDEFAULT_MODE),
        charField(kFIELD_PADDING_MODE, kDEFAULT_PADDING_MODE),
    };
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
    return &mFieldCollection;
}

GridSample3DPluginCreator::GridSample3DPluginCreator()
    : mFields{
        PluginField{kFIELD_ALIGN_CORNERS, nullptr, PluginFieldType::kINT32, 1},
        PluginField{kFIELD_MODE, nullptr, PluginFieldType::kCHAR, 0},
        PluginField{kFIELD_PADDING_MODE, nullptr, PluginFieldType::kCHAR, 0},
    }
{
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

char const* GridSample3DPluginCreator::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* GridSample3DPluginCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* GridSample3DPluginCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

PluginFieldCollection const* GridSample3DPluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

IPluginV3* GridSample3DPluginCreator::createPlugin(
    char const* name, PluginFieldCollection const* fc, nvinfer1::TensorRTPhase) noexcept
{
    try
    {
        Attributes attrs;
        std::string const error = parseFields(fc, attrs);
        if (!error.empty())
        {
            std::string const node = name != nullptr ? std::string(" (node ") + name + ")" : std::string();
            logError(error.c_str(), node.c_str());
            return nullptr;
        }
        return new GridSample3DPlugin(attrs.alignCorners != 0);
    }
    catch (...)
    {
        return nullptr;
    }
}

REGISTER_TENSORRT_PLUGIN(GridSample3DPluginCreator);

} // namespace facecodec
