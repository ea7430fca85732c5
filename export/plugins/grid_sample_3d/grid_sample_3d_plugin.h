// TensorRT 10.x IPluginV3 wrapper of the 5-D grid-sample kernel (grid_sample_3d.h).
// The library registers its creator when it is loaded (REGISTER_TENSORRT_PLUGIN), so it is
// loaded with dlopen: trtexec --staticPlugins, Triton's tensorrt plugins= or LD_PRELOAD,
// ctypes.CDLL in Python. See ../README.md.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <vector>

namespace facecodec
{

// Contract constants; tests/plugins check them against export/plugins/spec.py.
constexpr char const* kPLUGIN_NAME{"GridSample3D"};
constexpr char const* kPLUGIN_VERSION{"1"};
constexpr char const* kPLUGIN_NAMESPACE{""};
constexpr char const* kFIELD_ALIGN_CORNERS{"align_corners"};
constexpr char const* kFIELD_MODE{"mode"};
constexpr char const* kFIELD_PADDING_MODE{"padding_mode"};
constexpr int32_t kDEFAULT_ALIGN_CORNERS{0};
constexpr char const* kDEFAULT_MODE{"bilinear"};
constexpr char const* kDEFAULT_PADDING_MODE{"zeros"};

// Inputs X (N, C, D, H, W) and grid (N, Do, Ho, Wo, 3); output Y (N, C, Do, Ho, Wo).
// Linear layout; X and Y fp32 or fp16, of one type; grid of X's type, or fp32 with fp16 X.
class GridSample3DPlugin : public nvinfer1::IPluginV3,
                           public nvinfer1::IPluginV3OneCore,
                           public nvinfer1::IPluginV3OneBuild,
                           public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit GridSample3DPlugin(bool alignCorners);
    GridSample3DPlugin(GridSample3DPlugin const&) = delete;
    GridSample3DPlugin& operator=(GridSample3DPlugin const&) = delete;
    ~GridSample3DPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    // Non-null, so TensorRT keeps this plugin's timings in the timing cache instead of re-timing
    // it on every build (TensorRT adds the shapes and formats to the key).
    char const* getTimingCacheID() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    int32_t mAlignCorners;
    // Backing store for getFieldsToSerialize(); points into this object.
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

class GridSample3DPluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    GridSample3DPluginCreator();
    ~GridSample3DPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    // Build phase: fields from the ONNX node (missing ones take their defaults);
    // runtime phase: the fields written by getFieldsToSerialize().
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

} // namespace facecodec
