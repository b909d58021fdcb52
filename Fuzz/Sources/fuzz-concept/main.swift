import World

// A concept file (concepts/*.toml): the TOML subset reader, then the concept's own checks.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // ConceptFile(contentsOf:) refuses text that is not UTF-8 before parsing; so do we.
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    else { return 0 }
    _ = try? TOMLDocument(parsing: text, path: "input.toml")
    _ = try? ConceptFile(parsing: text, path: "concepts/input.toml")
    return 0
}
