import CKernels

/// Convolutions with bf16 operands and float32 sums through oneDNN (`OneDNN`): its direct
/// convolution on channels-last images outruns im2col and duo's bf16 GEMM. Where oneDNN is
/// missing, `conv2d` convolves on duo's kernels.
enum BF16Convolution {
    /// Smaller convolutions (multiply-adds) stay on duo's kernels: oneDNN's per-call setup
    /// and the layout changes cost more than they save there.
    static let minimumWork = 1 << 22

    /// Whether a convolution of this shape over `images` goes through oneDNN.
    static func applies(_ s: duo_conv_shape, images: Int, outChannels: Int) -> Bool {
        OneDNN.isUsed
            && images * outChannels * s.Ho * s.Wo * s.C * s.kh * s.kw >= minimumWork
    }

    /// y [B, outC, Ho, Wo] = conv(x, weight) + bias, or nil when oneDNN failed (then the
    /// caller convolves another way).
    static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?, shape s: duo_conv_shape)
        -> Tensor?
    {
        let (images, outC) = (x.shape[0], weight.shape[0])
        let prepared = preparedWeights(weight, shape: s, images: images, backward: false)
        let image = channelsLastBF16(x.pointer, images: images, channels: s.C, pixels: s.H * s.W)
        let result = Tensor.empty([images, s.Ho, s.Wo, outC])
        let done = withExtendedLifetime(image.memory) {
            withUnsafePointer(to: s) { shape in
                duo_onednn_conv_bf16(
                    shape, images, outC, image.words, weight.pointer, prepared?.pointer,
                    bias?.pointer, result.pointer, Int32(Parallel.availableThreads))
            }
        }
        guard done != 0 else { return nil }
        return channelsFirst(result, [images, outC, s.Ho, s.Wo])
    }

    /// dX [B, C, H, W] from dY [B, outC, Ho, Wo], or nil when oneDNN failed.
    static func inputGradient(
        _ dY: Tensor, weight: Tensor, inputShape: [Int], shape s: duo_conv_shape
    ) -> Tensor? {
        let (images, outC) = (inputShape[0], weight.shape[0])
        let prepared = preparedWeights(weight, shape: s, images: images, backward: true)
        let gradient = channelsLastBF16(
            dY.pointer, images: images, channels: outC, pixels: s.Ho * s.Wo)
        let result = Tensor.empty([images, s.H, s.W, s.C])
        let done = withExtendedLifetime(gradient.memory) {
            withUnsafePointer(to: s) { shape in
                duo_onednn_conv_input_gradient_bf16(
                    shape, images, outC, gradient.words, weight.pointer, prepared?.pointer,
                    result.pointer, Int32(Parallel.availableThreads))
            }
        }
        guard done != 0 else { return nil }
        return channelsFirst(result, inputShape)
    }

    /// x [images, channels, pixels] as [images, pixels, channels] in bf16, in a float
    /// tensor's memory (two bf16 values per float).
    private static func channelsLastBF16(
        _ x: UnsafePointer<Float>, images: Int, channels: Int, pixels: Int
    ) -> (memory: Tensor, words: UnsafeMutablePointer<UInt16>) {
        let plane = channels * pixels
        let memory = Tensor.empty([(images * plane + 1) / 2])
        let words = UnsafeMutableRawPointer(memory.pointer).assumingMemoryBound(to: UInt16.self)
        Parallel.forEach(images * pixels, costPerItem: channels) { r in
            for image in r.lowerBound / pixels...(r.upperBound - 1) / pixels {
                let lower = max(r.lowerBound - image * pixels, 0)
                let upper = min(r.upperBound - image * pixels, pixels)
                duo_channels_last_bf16(
                    x + image * plane, words + image * plane, channels, pixels, lower, upper)
            }
        }
        return (memory, words)
    }

    /// result [images, h, w, channels] as a tensor of `shape` [images, channels, h, w].
    private static func channelsFirst(_ result: Tensor, _ shape: [Int]) -> Tensor {
        let (images, channels) = (shape[0], shape[1])
        let pixels = shape[2] * shape[3]
        let plane = channels * pixels
        let y = Tensor.empty(shape)
        Parallel.forEach(images * channels, costPerItem: pixels) { r in
            for image in r.lowerBound / channels...(r.upperBound - 1) / channels {
                let lower = max(r.lowerBound - image * channels, 0)
                let upper = min(r.upperBound - image * channels, channels)
                duo_channels_first(
                    result.pointer + image * plane, y.pointer + image * plane, channels, pixels,
                    lower, upper)
            }
        }
        return y
    }

    /// The weight in the layout oneDNN's forward (or input-gradient) convolution asks for.
    private static func preparedWeights(
        _ weight: Tensor, shape s: duo_conv_shape, images: Int, backward: Bool
    ) -> OneDNN.PreparedWeights? {
        let key =
            "conv \(backward) \(images) \(s.C) \(s.H) \(s.W) \(s.kh) \(s.kw) \(s.stride) \(s.pad)"
        return OneDNN.prepared(weight, key: key) {
            withUnsafePointer(to: s) { shape in
                duo_onednn_prepare_conv_weights(
                    shape, images, weight.shape[0], weight.pointer, backward ? 1 : 0,
                    Int32(Parallel.availableThreads))
            }
        }
    }
}
