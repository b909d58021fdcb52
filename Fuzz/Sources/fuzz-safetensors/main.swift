import FuzzSupport
import Formats

// A safetensors file as `duo inspect` and the model loaders open it: the header is
// validated on open, then every tensor is read the ways the loaders read them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = ScratchFiles.write(
        UnsafeBufferPointer(start: data, count: size), named: "input.safetensors")
    _ = try? FileInspection.report(path: path)
    guard let file = try? SafeTensorsReader(path: path) else { return 0 }
    for tensor in file.tensors {
        _ = try? file.withUnsafeRawBytes(tensor.name) { $0.reduce(0, &+) }
        guard let floats = try? file.floats(tensor.name) else { continue }
        // The chunked reader must agree with the mapped one, bit for bit.
        let chunked = [Float](unsafeUninitializedCapacity: floats.count) { buffer, count in
            try? file.read(tensor.name, into: buffer)
            count = floats.count
        }
        guard chunked.map(\.bitPattern) == floats.map(\.bitPattern) else {
            fatalError("read(_:into:) and floats(_:) differ for tensor \(tensor.name)")
        }
        if tensor.dtype == .f32 {
            _ = try? file.withUnsafeFloat32Buffer(tensor.name) { $0.reduce(0, +) }
        }
    }
    return 0
}
