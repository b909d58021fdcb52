import Foundation

/// A counter-based random generator: Philox4x32-10 (Salmon et al., "Parallel random
/// numbers: as easy as 1, 2, 3", SC 2011), the generator of JAX and cuRAND.
///
/// A key names an independent stream; element i of a stream depends only on the key and i.
/// So values never depend on the thread count or on how a batch is cut: a sample drawn
/// with `key.fold(in: sampleIndex)` is the same in a batch of 1 or of 64.
public struct RandomKey: Hashable, Sendable {
    public let k0: UInt32
    public let k1: UInt32

    public init(seed: UInt64) {
        self.init(k0: UInt32(truncatingIfNeeded: seed), k1: UInt32(truncatingIfNeeded: seed >> 32))
    }

    init(k0: UInt32, k1: UInt32) {
        self.k0 = k0
        self.k1 = k1
    }

    /// A new independent key derived from this one and `data` (a step, a sample index).
    public func fold(in data: UInt64) -> RandomKey {
        let block = philox(
            counter: (
                UInt32(truncatingIfNeeded: data),
                UInt32(truncatingIfNeeded: data >> 32), 0x9E37_79B9, 0
            ))
        return RandomKey(k0: block.0, k1: block.1)
    }

    /// `n` independent keys.
    public func split(_ n: Int) -> [RandomKey] { (0..<n).map { fold(in: UInt64($0)) } }

    /// The 4 words of block `index` of this key's stream.
    func block(_ index: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        philox(
            counter: (
                UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32), 0, 0
            ))
    }

    func philox(counter: (UInt32, UInt32, UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var (c0, c1, c2, c3) = counter
        var (key0, key1) = (k0, k1)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            (c0, c1, c2, c3) = (
                UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ key0,
                UInt32(truncatingIfNeeded: p1),
                UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ key1,
                UInt32(truncatingIfNeeded: p0)
            )
            key0 &+= 0x9E37_79B9
            key1 &+= 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    /// Uniform in the open interval (0, 1), from the top 24 bits of a word.
    static func unitInterval(_ word: UInt32) -> Float { (Float(word >> 8) + 0.5) * 0x1p-24 }

    /// `count` uniform values in (0, 1): element i from word i of the stream.
    public func uniform(count: Int) -> [Float] {
        fill(count) { b in
            let w = block(UInt64(b))
            return (
                Self.unitInterval(w.0), Self.unitInterval(w.1), Self.unitInterval(w.2),
                Self.unitInterval(w.3)
            )
        }
    }

    /// `count` standard normal values: each block of 4 words gives 4 values by Box-Muller.
    public func normal(count: Int) -> [Float] {
        fill(count) { b in
            let w = block(UInt64(b))
            let (r1, a1) = boxMuller(Self.unitInterval(w.0), Self.unitInterval(w.1))
            let (r2, a2) = boxMuller(Self.unitInterval(w.2), Self.unitInterval(w.3))
            return (r1 * cos(a1), r1 * sin(a1), r2 * cos(a2), r2 * sin(a2))
        }
    }

    private func boxMuller(_ u1: Float, _ u2: Float) -> (Float, Float) {
        ((-2 * log(u1)).squareRoot(), 2 * Float.pi * u2)
    }

    private func fill(_ count: Int, _ values: (Int) -> (Float, Float, Float, Float)) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { buffer in
            let blocks = (count + 3) / 4
            Parallel.forEach(blocks, costPerItem: 64) { range in
                for b in range {
                    let v = values(b)
                    for (lane, value) in [v.0, v.1, v.2, v.3].enumerated()
                    where 4 * b + lane < count {
                        buffer[4 * b + lane] = value
                    }
                }
            }
        }
        return out
    }
}

extension Tensor {
    /// Standard normal values from `key`'s stream.
    public static func randn(_ shape: [Int], key: RandomKey, requiresGrad: Bool = false) -> Tensor {
        Tensor(key.normal(count: shape.reduce(1, *)), shape: shape, requiresGrad: requiresGrad)
    }

    /// Uniform values in (low, high) from `key`'s stream.
    public static func uniform(
        _ shape: [Int], low: Float = 0, high: Float = 1, key: RandomKey, requiresGrad: Bool = false
    ) -> Tensor {
        let values = key.uniform(count: shape.reduce(1, *)).map { low + (high - low) * $0 }
        return Tensor(values, shape: shape, requiresGrad: requiresGrad)
    }
}
