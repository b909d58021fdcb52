import FuzzSupport
import Formats

// A PNG as duo reads images (detector inputs, attack images, `duo inspect`): through libpng's
// simplified API. A decoded image must also encode and decode back to the same pixels.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? PNGInfo(data: bytes, path: "input.png")
    guard let image = try? PNGImage(decoding: bytes, path: "input.png") else { return 0 }
    guard let encoded = try? image.encoded(),
        let back = try? PNGImage(decoding: encoded, path: "re-encoded.png"), back == image
    else {
        fatalError("a decoded \(image.width)x\(image.height)x\(image.channels) image "
            + "does not survive encoding")
    }
    // The path-taking entry point `duo inspect` uses, on the same bytes.
    let path = ScratchFiles.write(
        UnsafeBufferPointer(start: data, count: size), named: "input.png")
    _ = try? FileInspection.report(path: path)
    return 0
}
