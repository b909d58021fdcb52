import CKernels
import Tensor
import XCTest

/// The layout changes around oneDNN's convolutions against element-by-element transposes:
/// whole 16 x 16 blocks (the vector path) and the partial ones at the edges, with NaN and
/// infinity among the values.
final class ChannelsLastTests: XCTestCase {
    /// (channels, pixels): whole blocks, partial channel and pixel blocks, fewer than 16.
    let shapes = [(32, 64), (45, 391), (16, 17), (4, 40)]

    func values(_ count: Int, seed: UInt64) -> [Float] {
        var x = Tensor.randn([count], key: RandomKey(seed: seed)).scalars.map { $0 * 1000 }
        x[3] = .nan
        x[5] = Float(bitPattern: 0x7f80_0001)  // a NaN that rounding to nearest would make infinite
        x[count - 2] = .infinity
        return x
    }

    func testChannelsLastIsTheRoundedTranspose() {
        for (i, (c, p)) in shapes.enumerated() {
            let x = values(c * p, seed: UInt64(i))
            var out = [UInt16](repeating: 0, count: c * p)
            duo_channels_last_bf16(x, &out, c, p, 0, p)
            for channel in 0..<c {
                for pixel in 0..<p {
                    let want = duo_bf16_from_float(x[channel * p + pixel])
                    XCTAssertEqual(
                        out[pixel * c + channel], want, "shape \(i) c \(channel) p \(pixel)")
                }
            }
        }
    }

    func testChannelsFirstIsTheTranspose() {
        for (i, (c, p)) in shapes.enumerated() {
            let src = values(c * p, seed: UInt64(10 + i))  // [P, C]
            var y = [Float](repeating: 0, count: c * p)
            duo_channels_first(src, &y, c, p, 0, c)
            for channel in 0..<c {
                for pixel in 0..<p {
                    XCTAssertEqual(
                        y[channel * p + pixel].bitPattern, src[pixel * c + channel].bitPattern,
                        "shape \(i) c \(channel) p \(pixel)")
                }
            }
        }
    }
}
