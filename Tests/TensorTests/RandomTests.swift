@testable import Tensor
import XCTest

final class RandomTests: XCTestCase {
    func testPhiloxMatchesRandom123KnownAnswers() {
        // Known-answer vectors of Philox4x32-10 from Random123's kat_vectors.
        let zero = RandomKey(seed: 0).philox(counter: (0, 0, 0, 0))
        XCTAssertEqual(
            [zero.0, zero.1, zero.2, zero.3], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let ones = RandomKey(seed: UInt64.max).philox(counter: (.max, .max, .max, .max))
        XCTAssertEqual(
            [ones.0, ones.1, ones.2, ones.3], [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        let pi = RandomKey(seed: 0x299f_31d0_a409_3822)
            .philox(counter: (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344))
        XCTAssertEqual(
            [pi.0, pi.1, pi.2, pi.3], [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    func testStreamsDoNotDependOnThreadCountOrLength() {
        let key = RandomKey(seed: 42)
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 1
        let serial = key.normal(count: 100_003)
        Parallel.threadCount = 2
        let parallel = key.normal(count: 100_003)
        XCTAssertEqual(serial.map(\.bitPattern), parallel.map(\.bitPattern))
        // A shorter draw is a prefix: a sample's noise does not depend on the batch size.
        XCTAssertEqual(
            key.normal(count: 10).map(\.bitPattern), Array(serial.prefix(10)).map(\.bitPattern))
    }

    func testFoldedAndSplitKeysGiveDistinctStreams() {
        let key = RandomKey(seed: 7)
        let keys = key.split(4) + [key, key.fold(in: 1 << 40)]
        let firsts = Set(keys.map { $0.uniform(count: 2).map(\.bitPattern) })
        XCTAssertEqual(firsts.count, keys.count)
        XCTAssertEqual(key.fold(in: 3), key.fold(in: 3))
    }

    func testNormalAndUniformMoments() {
        let n = 200_000
        let normal = RandomKey(seed: 1).normal(count: n).map(Double.init)
        let mean = normal.reduce(0, +) / Double(n)
        let variance = normal.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        // Standard errors: mean 1/sqrt(n) = 0.0022, variance sqrt(2/n) = 0.0032; allow 5 of them.
        XCTAssertEqual(mean, 0, accuracy: 0.011)
        XCTAssertEqual(variance, 1, accuracy: 0.016)
        let tail = normal.filter { abs($0) > 1.959964 }.count
        XCTAssertEqual(Double(tail) / Double(n), 0.05, accuracy: 0.0025)  // 5 standard errors
        let uniform = RandomKey(seed: 2).uniform(count: n)
        XCTAssertTrue(uniform.allSatisfy { $0 > 0 && $0 < 1 })
        XCTAssertEqual(Double(uniform.reduce(0, +)) / Double(n), 0.5, accuracy: 0.0033)
    }
}
