/// Max pooling over 2x2 windows with stride 2, as torch.nn.MaxPool2d(2) (VGG's pooling):
/// floor mode, so an odd last row or column is dropped; the first largest value of a window
/// in row-major order wins, and a NaN wins over any number, as in torch.
///
/// x: [B, C, H, W] -> [B, C, H/2, W/2]
///
/// The backward pass saves only the input and finds each window's winner again, rather than
/// keeping an index per output: evaluation networks (LPIPS's VGG) run it without gradients
/// on large images, and should not pay for indices they never use.
public func maxPool2x2(_ x: Tensor) -> Tensor {
    precondition(
        x.rank == 4 && x.shape[2] >= 2 && x.shape[3] >= 2,
        "maxPool2x2 expects [B, C, H >= 2, W >= 2], got \(x.shape)")
    let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
    let (ho, wo) = (h / 2, w / 2)
    let y = Tensor.empty([x.shape[0], x.shape[1], ho, wo])
    let (source, destination) = (x.pointer, y.pointer)
    Parallel.forEach(planes, costPerItem: h * w) { r in
        for plane in r {
            for i in 0..<ho {
                for j in 0..<wo {
                    let winner = poolWinner(source, plane: plane, i, j, height: h, width: w)
                    destination[(plane * ho + i) * wo + j] = source[winner]
                }
            }
        }
    }
    let saved = x.detached()
    return y.recorded("max_pool2x2", from: [x]) { dY in
        // Each output's gradient goes to its window's winner; the rest of x gets none.
        let dX = Tensor.zeros(saved.shape)
        let (source, upstream, gradient) = (saved.pointer, dY.pointer, dX.pointer)
        Parallel.forEach(planes, costPerItem: h * w) { r in
            for plane in r {
                for i in 0..<ho {
                    for j in 0..<wo {
                        let winner = poolWinner(source, plane: plane, i, j, height: h, width: w)
                        gradient[winner] = upstream[(plane * ho + i) * wo + j]
                    }
                }
            }
        }
        return [dX]
    }
}

/// The offset in x of the largest value of output (i, j)'s 2x2 window in `plane`.
private func poolWinner(
    _ x: UnsafeMutablePointer<Float>, plane: Int, _ i: Int, _ j: Int, height h: Int,
    width w: Int
) -> Int {
    let top = (plane * h + 2 * i) * w + 2 * j
    var winner = top
    // Three comparisons written out: an array of candidates would be allocated per window.
    func challenge(_ candidate: Int) {
        if x[candidate] > x[winner] || (x[candidate].isNaN && !x[winner].isNaN) {
            winner = candidate
        }
    }
    challenge(top + 1)
    challenge(top + w)
    challenge(top + w + 1)
    return winner
}
