import Diffusion
import FuzzSupport

// A diffusers tokenizer folder as CLIPTokenizer(directory:) loads it, then a prompt through
// it as the pipeline encodes prompts. The input is split at NUL bytes, which none of these
// text files hold:
//   tokenizer.json NUL prompt                        (transformers 5's single file)
//   vocab.json NUL merges.txt NUL prompt [NUL tokenizer_config.json]
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let parts = input.split(separator: 0, maxSplits: 3, omittingEmptySubsequences: false)
        .map { UnsafeBufferPointer(rebasing: $0) }
    guard parts.count >= 2 else { return 0 }
    let files: [String] =
        parts.count == 2
        ? ["tokenizer.json"]
        : ["vocab.json", "merges.txt", parts.count == 4 ? "tokenizer_config.json" : nil]
            .compactMap { $0 }
    // A file a previous input wrote must not be read as part of this one.
    for name in ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"]
    where !files.contains(name) {
        ScratchFiles.remove(named: name)
    }
    let contents = parts.count == 2 ? [parts[0]] : [parts[0], parts[1]] + parts.dropFirst(3)
    for (name, bytes) in zip(files, contents) {
        ScratchFiles.write(bytes, named: name)
    }
    guard let tokenizer = try? CLIPTokenizer(directory: ScratchFiles.directory) else { return 0 }

    let prompt = String(decoding: parts.count == 2 ? parts[1] : parts[2], as: UTF8.self)
    let ids = tokenizer.encode(prompt)
    let padded = tokenizer.encode(prompt, padTo: tokenizer.maxLength)
    guard padded.count == tokenizer.maxLength, ids.first == padded.first else {
        fatalError("encode(_:padTo: \(tokenizer.maxLength)) gave \(padded.count) ids")
    }
    _ = tokenizer.decode(ids)
    _ = tokenizer.decode(ids, skippingSpecialTokens: true)
    return 0
}
