// Parsing and validation of a safetensors header. Every check the reference implementation
// makes is made here, before any tensor is touched, so a reader that opened successfully
// never reads out of bounds and a bad file is reported once, with the file and tensor named.

/// The validated contents of a safetensors header.
struct SafeTensorsHeader {
    /// The tensors, in the order of their data offsets.
    let tensors: [SafeTensorInfo]
    /// The `__metadata__` map (empty when absent).
    let metadata: [String: String]
    /// Where the data region starts in the file: 8 + the header length.
    let dataStart: Int

    /// Parses and validates the header of a whole safetensors file held in `file`.
    static func parse(_ file: UnsafeRawBufferPointer, path: String) throws -> SafeTensorsHeader {
        let headerLength = try readHeaderLength(file, path: path)
        let headerBytes = Array(file[8..<(8 + headerLength)])
        let object = try parseJSONObject(headerBytes, path: path)

        var metadata: [String: String] = [:]
        var tensors: [SafeTensorInfo] = []
        for (key, value) in object {
            if key == safeTensorsMetadataKey {
                metadata = try parseMetadata(value, path: path)
            } else {
                tensors.append(try parseEntry(name: key, value, path: path))
            }
        }
        let dataSize = file.count - 8 - headerLength
        try checkRanges(&tensors, dataSize: dataSize, path: path)
        return SafeTensorsHeader(tensors: tensors, metadata: metadata, dataStart: 8 + headerLength)
    }

    /// The first 8 bytes: the header length, checked against the limit and the file size.
    private static func readHeaderLength(
        _ file: UnsafeRawBufferPointer, path: String
    ) throws -> Int {
        guard file.count >= 8 else {
            throw FormatError(
                .truncated, path: path,
                reason: "file is \(file.count) bytes, too short for the 8-byte header length")
        }
        let length = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
        guard length <= UInt64(safeTensorsMaxHeaderLength) else {
            throw FormatError(
                .invalidHeader, path: path,
                reason: "not a safetensors file (its first 8 bytes give a header length of "
                    + "\(length), over the limit of \(safeTensorsMaxHeaderLength) bytes)")
        }
        guard length <= UInt64(file.count - 8) else {
            throw FormatError(
                .invalidHeader, path: path,
                reason: "header length \(length) is larger than the file "
                    + "(\(file.count) bytes in all)")
        }
        return Int(length)
    }

    /// The header text as a JSON object, its members in file order.
    private static func parseJSONObject(
        _ bytes: [UInt8], path: String
    ) throws -> [(key: String, value: JSONValue)] {
        // Decoding repairs invalid UTF-8 with U+FFFD; a round trip that changes the bytes
        // is how invalid input shows itself (portable, unlike String(validating:)).
        guard Array(String(decoding: bytes, as: UTF8.self).utf8) == bytes else {
            throw FormatError(.invalidHeader, path: path, reason: "header is not valid UTF-8")
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch let error as JSONParseError {
            throw FormatError(
                .invalidHeader, path: path,
                reason: "header is not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .object(let members) = value else {
            throw FormatError(
                .invalidHeader, path: path,
                reason: "header must be a JSON object, found \(value.typeName)")
        }
        return members
    }

    /// `__metadata__`: a string → string map (`null` is read as empty, as the reference does).
    private static func parseMetadata(_ value: JSONValue, path: String) throws -> [String: String] {
        if case .null = value { return [:] }
        guard case .object(let members) = value else {
            throw FormatError(
                .invalidHeader, path: path,
                reason: "\(safeTensorsMetadataKey) must be an object, found \(value.typeName)")
        }
        var metadata: [String: String] = [:]
        for (key, member) in members {
            guard case .string(let text) = member else {
                throw FormatError(
                    .invalidHeader, path: path,
                    reason: "\(safeTensorsMetadataKey) value for '\(key)' must be a string, "
                        + "found \(member.typeName)")
            }
            metadata[key] = text
        }
        return metadata
    }
}

// MARK: - Tensor entries

extension SafeTensorsHeader {
    /// One `name: {"dtype", "shape", "data_offsets"}` entry, with its byte size checked.
    private static func parseEntry(
        name: String, _ value: JSONValue, path: String
    ) throws -> SafeTensorInfo {
        func fail(_ kind: FormatError.Kind, _ reason: String) -> FormatError {
            FormatError(kind, path: path, tensor: name, reason: reason)
        }
        guard case .object(let members) = value else {
            throw fail(.invalidEntry, "entry must be an object, found \(value.typeName)")
        }
        let fields = Dictionary(members, uniquingKeysWith: { first, _ in first })
        guard let dtypeValue = fields["dtype"] else { throw fail(.invalidEntry, "missing 'dtype'") }
        guard case .string(let dtypeName) = dtypeValue else {
            throw fail(.invalidEntry, "'dtype' must be a string, found \(dtypeValue.typeName)")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail(.unknownDType, "unknown dtype '\(dtypeName)' (known: \(known))")
        }
        guard let shapeValue = fields["shape"] else { throw fail(.invalidEntry, "missing 'shape'") }
        let shape = try integers(shapeValue, field: "shape", fail: fail)
        guard let offsetsValue = fields["data_offsets"] else {
            throw fail(.invalidEntry, "missing 'data_offsets'")
        }
        let offsets = try integers(offsetsValue, field: "data_offsets", fail: fail)
        guard offsets.count == 2, offsets[0] <= offsets[1] else {
            throw fail(
                .invalidEntry,
                "'data_offsets' must be [begin, end] with begin <= end, found \(offsets)")
        }
        let info = SafeTensorInfo(
            name: name, dtype: dtype, shape: shape, dataOffsets: offsets[0]..<offsets[1])
        try checkByteSize(info, fail: fail)
        return info
    }

    /// A JSON array of non-negative integers that fit in `Int`.
    private static func integers(
        _ value: JSONValue, field: String, fail: (FormatError.Kind, String) -> FormatError
    ) throws -> [Int] {
        guard case .array(let elements) = value else {
            throw fail(.invalidEntry, "'\(field)' must be an array, found \(value.typeName)")
        }
        return try elements.map { element in
            guard case .number(let text) = element, let number = Int(text), number >= 0 else {
                let found: String
                if case .number(let text) = element {
                    found = text
                } else {
                    found = element.typeName
                }
                throw fail(
                    .invalidEntry, "'\(field)' must hold non-negative integers, found \(found)")
            }
            return number
        }
    }

    /// The bytes a tensor spans must be exactly its element count times its element size.
    private static func checkByteSize(
        _ info: SafeTensorInfo, fail: (FormatError.Kind, String) -> FormatError
    ) throws {
        var needed = info.dtype.byteSize
        for dimension in info.shape {
            let (product, overflow) = needed.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw fail(.sizeMismatch, "shape \(info.shape) has too many elements")
            }
            needed = product
        }
        guard needed == info.byteCount else {
            throw fail(
                .sizeMismatch,
                "shape \(info.shape) of \(info.dtype.rawValue) needs \(needed) bytes, "
                    + "data_offsets [\(info.dataOffsets.lowerBound), "
                    + "\(info.dataOffsets.upperBound)] span \(info.byteCount)")
        }
    }

    /// Sorts the tensors by offset and checks that each lies inside the data region and
    /// that no two share a byte. Gaps between tensors are allowed, as they are harmless.
    private static func checkRanges(
        _ tensors: inout [SafeTensorInfo], dataSize: Int, path: String
    ) throws {
        tensors.sort {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name)
                < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name)
        }
        var previous: SafeTensorInfo?
        for info in tensors {
            guard info.dataOffsets.upperBound <= dataSize else {
                throw FormatError(
                    .truncated, path: path, tensor: info.name,
                    reason: "data_offsets end at \(info.dataOffsets.upperBound) but the data "
                        + "region holds \(dataSize) bytes (file truncated?)")
            }
            // Empty tensors own no bytes and so overlap nothing.
            guard !info.dataOffsets.isEmpty else { continue }
            if let previous, previous.dataOffsets.upperBound > info.dataOffsets.lowerBound {
                throw FormatError(
                    .overlap, path: path, tensor: info.name,
                    reason: "data_offsets \(bounds(info)) overlap tensor '\(previous.name)' "
                        + "at \(bounds(previous))")
            }
            previous = info
        }
    }

    private static func bounds(_ info: SafeTensorInfo) -> String {
        "[\(info.dataOffsets.lowerBound), \(info.dataOffsets.upperBound)]"
    }
}
