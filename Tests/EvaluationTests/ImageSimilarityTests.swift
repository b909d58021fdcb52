import Evaluation
import Formats
import Foundation
import XCTest

/// SSIM and PSNR against scikit-image (tools/make_similarity_fixture.py).
final class ImageSimilarityTests: XCTestCase {
    func testSSIMAndPSNRMatchScikitImage() throws {
        let folder = Bundle.module.resourcePath! + "/Fixtures/similarity"
        let a = try PNGImage(contentsOf: folder + "/a.png")
        let expected =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: folder + "/expected.json")))
            as! [[String: Any]]
        XCTAssertEqual(expected.count, 3)
        for item in expected {
            let b = try PNGImage(contentsOf: folder + "/" + (item["file"] as! String))
            XCTAssertEqual(ImageSimilarity.ssim(a, b), item["ssim"] as! Double, accuracy: 1e-9)
            XCTAssertEqual(ImageSimilarity.psnr(a, b), item["psnr"] as! Double, accuracy: 1e-9)
        }
        XCTAssertEqual(ImageSimilarity.ssim(a, a), 1, accuracy: 1e-12)
    }
}
