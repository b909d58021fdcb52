import XCTest

@testable import Formats

/// The bit conversions against Swift's own Float16 (compiler-rt's conversions), where the
/// platform has it; numpy's rounding is checked separately through the writer.
final class HalfFloatTests: XCTestCase {
    #if !(os(macOS) && arch(x86_64))
        func testWideningMatchesFloat16ForEveryHalf() {
            for bits in UInt16.min...UInt16.max {
                let want = Float(Float16(bitPattern: bits))
                let got = floatFromHalfBits(bits)
                if want.isNaN {
                    XCTAssertTrue(got.isNaN, "0x\(String(bits, radix: 16))")
                } else {
                    XCTAssertEqual(got.bitPattern, want.bitPattern, "0x\(String(bits, radix: 16))")
                }
            }
        }

        func testNarrowingMatchesFloat16() {
            // Every half, its neighbours and the midpoints between halves (ties), plus random
            // float bit patterns over the whole range.
            var generator = SystemRandomNumberGenerator()
            var inputs: [Float] = (0..<200_000).map { _ in
                Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &generator))
            }
            for bits in UInt16.min...UInt16.max where bits & 0x7C00 != 0x7C00 {
                let value = Float(Float16(bitPattern: bits))
                let next = Float(Float16(bitPattern: bits).nextUp)
                inputs += [value, value.nextUp, value.nextDown, (value + next) / 2]
            }
            for value in inputs where !value.isNaN {
                let want = Float16(value).bitPattern
                XCTAssertEqual(
                    halfBitsFromFloat(value), want,
                    "\(value) (0x\(String(value.bitPattern, radix: 16)))")
            }
            XCTAssertEqual(halfBitsFromFloat(.nan) & 0x7C00, 0x7C00)
            XCTAssertNotEqual(halfBitsFromFloat(.nan) & 0x03FF, 0)
        }
    #endif

    func testBFloat16IsTheTopHalfOfAFloat() {
        XCTAssertEqual(floatFromBFloat16Bits(0x3F80), 1)
        XCTAssertEqual(floatFromBFloat16Bits(0xC049).bitPattern, 0xC049_0000)
    }
}
