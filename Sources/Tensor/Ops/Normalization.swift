import CKernels

/// Group norm, layer norm and softmax. The kernels cache what the backward pass needs
/// (mean and reciprocal standard deviation, or the softmax output).

/// x: [B, C, ...] normalized over groups of C / groups channels; weight, bias: [C].
public func groupNorm(
    _ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float = 1e-5
) -> Tensor {
    groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, thenSiLU: false)
}

/// silu(groupNorm(x)) as one op, what every resnet block and the UNet's output apply: the
/// same bits as the two ops, without writing the normalized map or, when trained, keeping
/// it (the backward pass recomputes it from x and the statistics).
public func groupNormSiLU(
    _ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float = 1e-5
) -> Tensor {
    groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, thenSiLU: true)
}

private func groupNorm(
    _ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float, thenSiLU: Bool
) -> Tensor {
    precondition(x.rank >= 2 && x.shape[1] % groups == 0, "groupNorm: \(x.shape), \(groups) groups")
    let (batch, channels) = (x.shape[0], x.shape[1])
    precondition(weight.shape == [channels] && bias.shape == [channels], "groupNorm affine shapes")
    let spatial = x.count / (batch * channels)
    let y = Tensor.empty(x.shape)
    let mean = Tensor.empty([batch, groups])
    let rstd = Tensor.empty([batch, groups])
    let forward = thenSiLU ? duo_group_norm_silu_forward : duo_group_norm_forward
    Parallel.forEach(batch * groups, costPerItem: channels / groups * spatial * 3) { r in
        forward(
            x.pointer, weight.pointer, bias.pointer, y.pointer, mean.pointer,
            rstd.pointer, channels, spatial, groups, eps, r.lowerBound, r.upperBound)
    }
    let (savedX, savedW, savedB) = (x.detached(), weight.detached(), bias.detached())
    return y.recorded(thenSiLU ? "group_norm_silu" : "group_norm", from: [x, weight, bias]) {
        dY in
        // Through SiLU first: the gradient at the normalized map.
        var dNorm = dY
        if thenSiLU {
            dNorm = Tensor.empty(savedX.shape)
            Parallel.forEach(batch * groups, costPerItem: channels / groups * spatial * 2) { r in
                duo_group_norm_silu_gradient(
                    savedX.pointer, savedW.pointer, savedB.pointer, mean.pointer, rstd.pointer,
                    dY.pointer, dNorm.pointer, channels, spatial, groups, r.lowerBound,
                    r.upperBound)
            }
        }
        let dX = Tensor.empty(savedX.shape)
        let dWeightPartial = Tensor.empty([batch, channels])
        let dBiasPartial = Tensor.empty([batch, channels])
        Parallel.forEach(batch * groups, costPerItem: channels / groups * spatial * 4) { r in
            duo_group_norm_backward(
                savedX.pointer, savedW.pointer, mean.pointer, rstd.pointer,
                dNorm.pointer, dX.pointer, dWeightPartial.pointer,
                dBiasPartial.pointer, channels, spatial, groups,
                r.lowerBound, r.upperBound)
        }
        return [
            x.requiresGrad ? dX : nil,
            weight.requiresGrad ? Broadcast.sum(dWeightPartial, to: [channels]) : nil,
            bias.requiresGrad ? Broadcast.sum(dBiasPartial, to: [channels]) : nil,
        ]
    }
}

/// x: [..., D] normalized over the last dimension; weight, bias: [D].
public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
    let d = x.shape.last!
    precondition(
        weight.shape == [d] && bias.shape == [d], "layerNorm: \(x.shape) with [\(weight.shape)]")
    let rows = x.count / d
    let y = Tensor.empty(x.shape)
    let mean = Tensor.empty([rows])
    let rstd = Tensor.empty([rows])
    Parallel.forEach(rows, costPerItem: d * 3) { r in
        duo_layer_norm_forward(
            x.pointer, weight.pointer, bias.pointer, y.pointer, mean.pointer,
            rstd.pointer, d, eps, r.lowerBound, r.upperBound)
    }
    let (savedX, savedW) = (x.detached(), weight.detached())
    return y.recorded("layer_norm", from: [x, weight, bias]) { dY in
        // Weight and bias gradients are summed per fixed block of rows, then over blocks in
        // order, so the result does not depend on the thread count.
        let blockRows = 64
        let blocks = (rows + blockRows - 1) / blockRows
        let dX = Tensor.empty(savedX.shape)
        let dWeightPartial = Tensor.zeros([blocks, d])
        let dBiasPartial = Tensor.zeros([blocks, d])
        Parallel.forEach(blocks, costPerItem: blockRows * d * 4) { range in
            for block in range {
                let lower = block * blockRows
                duo_layer_norm_backward(
                    savedX.pointer, savedW.pointer, mean.pointer, rstd.pointer,
                    dY.pointer, dX.pointer, dWeightPartial.pointer + block * d,
                    dBiasPartial.pointer + block * d, d, lower,
                    min(rows, lower + blockRows))
            }
        }
        return [
            x.requiresGrad ? dX : nil,
            weight.requiresGrad ? Broadcast.sum(dWeightPartial, to: [d]) : nil,
            bias.requiresGrad ? Broadcast.sum(dBiasPartial, to: [d]) : nil,
        ]
    }
}

/// Softmax over the last dimension.
public func softmax(_ x: Tensor) -> Tensor {
    let d = x.shape.last!
    let rows = x.count / d
    let y = Tensor.empty(x.shape)
    Parallel.forEach(rows, costPerItem: d * 4) { r in
        duo_softmax_forward(x.pointer, y.pointer, d, r.lowerBound, r.upperBound)
    }
    let savedY = y.detached()
    return y.recorded("softmax", from: [x]) { dY in
        let dX = Tensor.empty(savedY.shape)
        Parallel.forEach(rows, costPerItem: d * 4) { r in
            duo_softmax_backward(
                savedY.pointer, dY.pointer, dX.pointer, d, r.lowerBound, r.upperBound)
        }
        return [dX]
    }
}
