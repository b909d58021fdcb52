// Bit-level conversions between Float and the two 16-bit float formats in checkpoints.
//
// Swift's Float16 is unavailable on macOS for x86_64, and BFloat16 does not exist; doing the
// bit math here keeps one code path on every platform and makes the rounding explicit.

/// IEEE 754 binary16 bits → Float, exactly (every half is representable as a Float),
/// including subnormals, signed zeros, infinities and NaN payloads.
@inline(__always)
func floatFromHalfBits(_ half: UInt16) -> Float {
    let sign: UInt32 = UInt32(half & 0x8000) << 16
    let exponent = UInt32(half >> 10) & 0x1F
    let mantissa = UInt32(half & 0x03FF)
    switch exponent {
    case 0:
        // Zero or subnormal: mantissa × 2⁻²⁴, exact in Float.
        let magnitude = Float(mantissa) * 0x1p-24
        return Float(bitPattern: sign | magnitude.bitPattern)
    case 0x1F:
        // Infinity (mantissa 0) or NaN, payload kept in the top mantissa bits.
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    default:
        // Normal: rebias the exponent from 15 to 127, widen the mantissa from 10 to 23 bits.
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

/// Float → IEEE 754 binary16 bits, rounding to nearest with ties to even (as numpy's
/// `astype(float16)` and PyTorch's `.half()` do): overflow gives ±infinity, tiny values
/// give subnormals or ±0, NaN stays NaN.
@inline(__always)
func halfBitsFromFloat(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xFF)
    let mantissa = bits & 0x007F_FFFF
    if exponent == 0xFF {
        // Infinity, or NaN forced quiet so a payload in the dropped bits cannot make it ∞.
        return sign | 0x7C00 | (mantissa == 0 ? 0 : 0x0200 | UInt16(mantissa >> 13))
    }
    let halfExponent = exponent - 127 + 15
    if halfExponent >= 0x1F { return sign | 0x7C00 }
    if halfExponent <= 0 {
        // Subnormal half (or zero): shift the full significand down to units of 2⁻²⁴.
        // Below 2⁻²⁵ everything rounds to zero; the shift would exceed the significand.
        if halfExponent < -10 { return sign }
        let significand = mantissa | 0x0080_0000
        return sign | roundShiftRight(significand, by: UInt32(14 - halfExponent))
    }
    // Normal: a carry out of the mantissa correctly bumps the exponent (up to infinity).
    let truncated = UInt32(halfExponent) << 23 | mantissa
    return sign | roundShiftRight(truncated, by: 13)
}

/// `value >> shift`, rounded to nearest with ties to even.
@inline(__always)
private func roundShiftRight(_ value: UInt32, by shift: UInt32) -> UInt16 {
    let kept = value >> shift
    let remainder = value & ((1 << shift) - 1)
    let half: UInt32 = 1 << (shift - 1)
    let roundUp = remainder > half || (remainder == half && kept & 1 == 1)
    return UInt16(truncatingIfNeeded: kept + (roundUp ? 1 : 0))
}

/// bfloat16 bits → Float: bfloat16 is the top half of a Float, so this is exact.
@inline(__always)
func floatFromBFloat16Bits(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}
