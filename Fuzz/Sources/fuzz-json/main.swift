import Formats

// JSONParser reads safetensors headers, model configs and tokenizer files. Beyond "no
// crash", each string the parser returns must survive a round trip through jsonQuoted,
// the quoting duo writes JSON with.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? JSONParser.parse(bytes) else { return 0 }
    visit(value)
    return 0
}

private func visit(_ value: JSONValue) {
    switch value {
    case .object(let members):
        for (key, member) in members {
            checkRoundTrip(key)
            // The accessors callers use on small files.
            _ = value[key]?.int
            visit(member)
        }
    case .array(let elements):
        elements.forEach(visit)
    case .string(let text):
        checkRoundTrip(text)
    case .number:
        _ = value.int
        _ = value.double
    case .bool, .null:
        break
    }
}

private func checkRoundTrip(_ text: String) {
    let quoted = Array(jsonQuoted(text).utf8)
    guard case .string(let back)? = try? JSONParser.parse(quoted), back == text else {
        fatalError("jsonQuoted(\(text.debugDescription)) does not parse back to itself")
    }
}
