import Formats
import Foundation

/// Foundation's file errors as one line naming the path and the reason, in place of their
/// domain, code and user-info dump.
enum ErrorText {
    static func cleaned(_ error: Error) -> Error {
        let domain = (error as NSError).domain
        guard domain == NSCocoaErrorDomain || domain == NSPOSIXErrorDomain else { return error }
        let path = FileProblem.path(error).map { "\($0): " } ?? ""
        return OneLineError(path + FileProblem.reason(error))
    }
}
