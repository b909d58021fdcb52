import Concepts
import FuzzSupport

// An attack prompt set (concepts/<name>/*.txt). What PromptSetFile reads, it must be able
// to write back and read again unchanged: attacks save their prompts this way. The same
// bytes read as a CSV set (I2P's layout) must give rows or an error, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    _ = try? PromptSetFile.rows(ScratchFiles.write(input, named: "input.csv"))
    let path = ScratchFiles.write(input, named: "input.txt")
    guard let prompts = try? PromptSetFile.read(path) else { return 0 }
    let copy = ScratchFiles.write(UnsafeBufferPointer(start: nil, count: 0), named: "copy.txt")
    do {
        try PromptSetFile.write(prompts, header: "fuzz round trip", to: copy)
        let back = try PromptSetFile.read(copy)
        guard back == prompts else {
            fatalError("\(prompts.count) prompts written, \(back.count) read back")
        }
    } catch {
        fatalError("prompts that were read cannot be written back: \(error)")
    }
    return 0
}
