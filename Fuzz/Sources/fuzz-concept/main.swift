import Concepts

// A concept file (concepts/*.toml): the TOML subset reader, the concept's own checks, then
// its templates filled as `duo synthesize` fills them (keep prompts are parsed back as
// captions).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // ConceptFile(contentsOf:) refuses text that is not UTF-8 before parsing; so do we.
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let text = String(validating: bytes, as: UTF8.self) else { return 0 }
    _ = try? TOMLDocument(parsing: text, path: "input.toml")
    guard let concept = try? ConceptFile(parsing: text, path: "concepts/input.toml") else {
        return 0
    }
    _ = concept.promptPairs(count: 2, seed: 0)
    _ = concept.keepPrompts(count: 2, seed: 0)
    return 0
}
