import CKernels

/// 2-D convolution: under bf16 mixed precision through oneDNN where it is there
/// (BF16Convolution.swift); otherwise 3x3 stride-1 ones by Winograd F(2x2, 3x3)
/// (Winograd.swift), the others as im2col + GEMM, laid out weights x columns so that the output pixels are the
/// wide GEMM dimension (faster on OpenBLAS than the transposed layout).
///
/// x: [B, inC, H, W], weight: [outC, inC, kh, kw], bias: [outC]
///   -> [B, outC, (H + 2 pad - kh) / stride + 1, (W + 2 pad - kw) / stride + 1]
public func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0
) -> Tensor {
    precondition(
        x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[1],
        "conv2d: x \(x.shape) with weight \(weight.shape)")
    let outC = weight.shape[0]
    var s = duo_conv_shape(
        C: x.shape[1], H: x.shape[2], W: x.shape[3], kh: weight.shape[2], kw: weight.shape[3],
        stride: stride, pad: padding, Ho: 0, Wo: 0)
    s.Ho = (s.H + 2 * padding - s.kh) / stride + 1
    s.Wo = (s.W + 2 * padding - s.kw) / stride + 1
    precondition(bias == nil || bias!.shape == [outC], "conv2d: bias \(bias!.shape)")
    let y: Tensor
    if BF16Convolution.applies(s, images: x.shape[0], outChannels: outC),
        let bf16 = BF16Convolution.forward(x, weight: weight, bias: bias, shape: s)
    {
        y = bf16
    } else if Winograd.applies(s, outChannels: outC) {
        y = Winograd.convolve(x, weight: weight, bias: bias)
    } else {
        y = im2colConvolution(x, weight: weight, bias: bias, shape: s)
    }
    let (savedX, savedW) = (x.detached(), weight.detached())
    let inputs = [x, weight] + (bias.map { [$0] } ?? [])
    return y.recorded("conv2d", from: inputs) { dY in
        conv2dBackward(dY, x: savedX, weight: savedW, shape: s, needs: inputs.map(\.requiresGrad))
    }
}

private func im2colConvolution(_ x: Tensor, weight: Tensor, bias: Tensor?, shape s: duo_conv_shape)
    -> Tensor
{
    let (batch, outC) = (x.shape[0], weight.shape[0])
    let (k, p) = (s.C * s.kh * s.kw, s.Ho * s.Wo)
    let y = Tensor.empty([batch, outC, s.Ho, s.Wo])
    // Images are split over cores, each part with its own column buffer; a single image
    // is split inside im2col and the GEMM instead.
    let cost = 2 * k * p * outC
    let columns = (0..<Parallel.partCount(batch, costPerItem: cost)).map { _ in Im2Col(shape: s) }
    Parallel.forEachPart(batch, costPerItem: cost) { part, images in
        for b in images {
            let (cols, ld) = columns[part].fill(x.pointer + b * s.C * s.H * s.W)
            let yb = y.pointer + b * outC * p
            if let bias {
                for o in 0..<outC { (yb + o * p).update(repeating: bias.pointer[o], count: p) }
            }
            // Y_b [outC, P] = W [outC, K] x cols [K, P]
            BLAS.gemm(
                m: outC, n: p, k: k, a: weight.pointer, lda: k, b: cols, ldb: ld,
                beta: bias == nil ? 0 : 1, c: yb, ldc: p)
        }
    }
    return y
}

private func conv2dBackward(
    _ dY: Tensor, x: Tensor, weight: Tensor, shape s: duo_conv_shape, needs: [Bool]
) -> [Tensor?] {
    let outC = weight.shape[0]
    if needs[0], !needs[1], BF16Convolution.applies(s, images: x.shape[0], outChannels: outC),
        let dX = BF16Convolution.inputGradient(dY, weight: weight, inputShape: x.shape, shape: s)
    {
        // A frozen convolution (no weight gradient) under mixed precision.
        let dBias =
            needs.count == 3 && needs[2]
            ? Broadcast.sum(dY, to: [1, outC, 1, 1]).detachedReshape([outC]) : nil
        return needs.count == 3 ? [dX, nil, dBias] : [dX, nil]
    }
    // Winograd's dX is the convolution of dY with the kernel transposed and rotated by 180°.
    var grads: [Tensor?]
    if Winograd.applies(s, outChannels: outC) {
        let dW =
            !needs[1]
            ? nil
            : Winograd.appliesToWeightGradient(s)
                ? Winograd.weightGradient(x: x, dY: dY)
                : im2colGradients(dY, x: x, weight: weight, shape: s, needs: [false, true])[1]
        grads = [needs[0] ? Winograd.convolve(dY, weight: weight, adjoint: true) : nil, dW]
    } else {
        grads = im2colGradients(dY, x: x, weight: weight, shape: s, needs: needs)
    }
    if needs.count == 3 {
        grads.append(
            needs[2] ? Broadcast.sum(dY, to: [1, outC, 1, 1]).detachedReshape([outC]) : nil)
    }
    return grads
}

/// [dX, dW] by im2col: dW from each image's columns, dX scattered back from W^T dY.
private func im2colGradients(
    _ dY: Tensor, x: Tensor, weight: Tensor, shape s: duo_conv_shape, needs: [Bool]
) -> [Tensor?] {
    let (batch, outC) = (x.shape[0], weight.shape[0])
    let (k, p) = (s.C * s.kh * s.kw, s.Ho * s.Wo)
    let dX = needs[0] ? Tensor.zeros(x.shape) : nil
    let cost = 4 * k * p * outC
    let parts = Parallel.partCount(batch, costPerItem: cost)
    let columns = (0..<parts).map { _ in Im2Col(shape: s) }
    // Each part sums its images' weight gradients; the parts are added in order after.
    let dWParts = needs[1] ? (0..<parts).map { _ in Tensor.zeros(weight.shape) } : []
    Parallel.forEachPart(batch, costPerItem: cost) { part, images in
        for b in images {
            let dYb = dY.pointer + b * outC * p
            if needs[1] {
                // dW += dY_b [outC, P] x cols_b^T [P, K]
                let (cols, ld) = columns[part].fill(x.pointer + b * s.C * s.H * s.W)
                BLAS.gemm(
                    transB: true, m: outC, n: k, k: p, a: dYb, lda: p, b: cols, ldb: ld,
                    beta: 1, c: dWParts[part].pointer, ldc: k)
            }
            if let dX {
                // dcols [K, P] = W^T [K, outC] x dY_b [outC, P], then scattered back to pixels
                let (dCols, ld) = (columns[part].scratch, columns[part].rowStride)
                BLAS.gemm(
                    transA: true, m: k, n: p, k: outC, a: weight.pointer, lda: k, b: dYb,
                    ldb: p, c: dCols, ldc: ld)
                let dXb = dX.pointer + b * s.C * s.H * s.W
                withUnsafePointer(to: s) { shape in
                    Parallel.forEach(s.C, costPerItem: s.kh * s.kw * p) { r in
                        duo_col2im(shape, dCols, ld, dXb, r.lowerBound, r.upperBound)
                    }
                }
            }
        }
    }
    let dW = dWParts.first
    for extra in dWParts.dropFirst() { dW!.addInPlace(extra) }
    return [dX, dW]
}

/// The column buffer of one image, reused across the batch, in rows `rowStride` apart
/// (`BLAS.paddedRowStride`). A 1x1 stride-1 convolution needs no copy: the image itself is
/// the column matrix.
private final class Im2Col {
    let shape: duo_conv_shape
    let rowStride: Int
    private(set) lazy var buffer = Tensor.empty([shape.C * shape.kh * shape.kw * rowStride])

    init(shape: duo_conv_shape) {
        self.shape = shape
        rowStride = BLAS.paddedRowStride(shape.Ho * shape.Wo)
    }

    var isIdentity: Bool {
        shape.kh == 1 && shape.kw == 1 && shape.stride == 1 && shape.pad == 0
    }

    /// Scratch memory of the column size.
    var scratch: UnsafeMutablePointer<Float> { buffer.pointer }

    /// The image's column matrix and its row stride.
    func fill(_ image: UnsafeMutablePointer<Float>) -> (UnsafeMutablePointer<Float>, Int) {
        if isIdentity { return (image, shape.Ho * shape.Wo) }
        let rows = shape.C * shape.kh * shape.kw
        // Created here, before the threads: a lazy property first touched by two threads
        // at once would be created twice.
        let (columns, stride) = (buffer.pointer, rowStride)
        withUnsafePointer(to: shape) { s in
            Parallel.forEach(rows, costPerItem: shape.Ho * shape.Wo) { r in
                duo_im2col(s, image, columns, stride, r.lowerBound, r.upperBound)
            }
        }
        return (columns, stride)
    }
}
