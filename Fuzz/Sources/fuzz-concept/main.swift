import Concepts
import Formats
import World

// A concept file (concepts/*.toml): the TOML subset reader, the concept's own checks, then
// its templates filled as `duo synthesize` fills them: by the world (keep prompts are parsed
// back as captions) and as plain prompts.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // ConceptFile(contentsOf:) refuses text that is not UTF-8 before parsing; so do we.
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let text = String(validating: bytes, as: UTF8.self) else { return 0 }
    _ = try? TOMLDocument(parsing: text, path: "input.toml")
    guard let concept = try? ConceptFile(parsing: text, path: "concepts/input.toml") else {
        return 0
    }
    for filler in [WorldPrompts() as PromptFiller, PlainPrompts()] {
        _ = try? filler.pairPrompts(concept, count: 2, seed: 0)
        _ = try? filler.keepPrompts(concept, count: 2, seed: 0)
    }
    return 0
}
