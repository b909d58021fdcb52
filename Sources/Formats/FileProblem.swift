#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation

/// The reason of a file-system error in a few words, without Foundation's dump of its
/// domain, code and user info.
public enum FileProblem {
    public static func reason(_ error: Error) -> String {
        if let oneLine = error as? OneLineError { return oneLine.description }
        if let format = error as? FormatError { return format.description }
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError,
            underlying.domain == NSPOSIXErrorDomain
        {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if nsError.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(nsError.code)))
        }
        guard nsError.domain == NSCocoaErrorDomain else {
            return FormatError.singleLine("\(error)")
        }
        switch CocoaError.Code(rawValue: nsError.code) {
        case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or folder"
        case .fileWriteFileExists: return "already exists"
        case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
        case .fileWriteOutOfSpace: return "no space left on the device"
        case .fileWriteVolumeReadOnly: return "read-only file system"
        case .fileReadCorruptFile: return "not in the expected format"
        case .fileReadInapplicableStringEncoding: return "not UTF-8 text"
        default: return "file-system error \(nsError.code)"
        }
    }

    /// The path an error is about, where Foundation recorded one.
    public static func path(_ error: Error) -> String? {
        let info = (error as NSError).userInfo
        return info[NSFilePathErrorKey] as? String ?? (info[NSURLErrorKey] as? URL)?.path
    }
}
