import Diffusion
import FuzzSupport

// A diffusers tokenizer folder as CLIPTokenizer(directory:) loads it, then a prompt through
// it as the pipeline encodes prompts. The input is split at NUL bytes (which none of these
// text files hold) into vocab.json, merges.txt, the prompt and, when there is a fourth part,
// tokenizer_config.json.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let parts = input.split(separator: 0, maxSplits: 3, omittingEmptySubsequences: false)
    guard parts.count >= 3 else { return 0 }
    let files = ["vocab.json", "merges.txt"]
    for (part, name) in zip(parts, files) {
        ScratchFiles.write(UnsafeBufferPointer(rebasing: part), named: name)
    }
    if parts.count == 4 {
        ScratchFiles.write(UnsafeBufferPointer(rebasing: parts[3]), named: "tokenizer_config.json")
    } else {
        ScratchFiles.remove(named: "tokenizer_config.json")
    }
    guard let tokenizer = try? CLIPTokenizer(directory: ScratchFiles.directory) else { return 0 }

    let prompt = String(decoding: UnsafeBufferPointer(rebasing: parts[2]), as: UTF8.self)
    let ids = tokenizer.encode(prompt)
    let padded = tokenizer.encode(prompt, padTo: tokenizer.maxLength)
    guard padded.count == tokenizer.maxLength, ids.first == padded.first else {
        fatalError("encode(_:padTo: \(tokenizer.maxLength)) gave \(padded.count) ids")
    }
    _ = tokenizer.decode(ids)
    _ = tokenizer.decode(ids, skippingSpecialTokens: true)
    return 0
}
