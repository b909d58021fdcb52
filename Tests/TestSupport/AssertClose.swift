import Tensor
import XCTest

/// Fails unless every |a - b| <= atol + rtol * |b|, naming the first offending index.
public func assertClose(
    _ a: [Float], _ b: [Float], rtol: Float = 1e-5, atol: Float = 1e-6, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    guard a.count == b.count else {
        XCTFail("\(message) count \(a.count) != \(b.count)", file: file, line: line)
        return
    }
    // Written so that a NaN on either side fails.
    for i in a.indices where !(abs(a[i] - b[i]) <= atol + rtol * abs(b[i])) {
        XCTFail(
            "\(message) index \(i): \(a[i]) vs \(b[i]) (rtol \(rtol), atol \(atol))",
            file: file, line: line)
        return
    }
}

public func assertClose(
    _ a: Tensor, _ b: [Float], rtol: Float = 1e-5, atol: Float = 1e-6, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    assertClose(a.scalars, b, rtol: rtol, atol: atol, message, file: file, line: line)
}
