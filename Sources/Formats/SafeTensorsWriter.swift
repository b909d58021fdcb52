/// Collects named Float tensors and writes them as one safetensors file.
///
/// The output is byte-for-byte deterministic for the same tensors and metadata, readable by
/// the reference `safetensors` package, and written atomically: a failed or interrupted
/// write leaves any previous file at the path untouched and no partial file behind.
///
/// ```swift
/// var writer = SafeTensorsWriter(metadata: ["format": "pt"])
/// try writer.add("lora.up.weight", shape: [320, 4], values: up)
/// try writer.add("lora.down.weight", shape: [4, 320], values: down, as: .f16)
/// try writer.write(to: "adapter.safetensors")
/// ```
public struct SafeTensorsWriter: Sendable {
    /// How a tensor's Floats are stored in the file.
    public enum Storage: Sendable {
        /// 32-bit floats, exact.
        case f32
        /// IEEE half floats, rounded to nearest even (±inf beyond ±65504).
        case f16

        var dtype: SafeTensorsDType { self == .f32 ? .f32 : .f16 }
    }

    private struct Entry: Sendable {
        let name: String
        let shape: [Int]
        let values: [Float]
        let storage: Storage
    }

    /// The `__metadata__` map written into the header.
    public var metadata: [String: String]
    private var entries: [String: Entry] = [:]

    /// Creates an empty writer with the given header metadata.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds tensor `name` with `shape` and its row-major `values`.
    ///
    /// Throws `invalidArgument` for a duplicate or reserved name, a negative dimension, or a
    /// value count that is not the product of the shape.
    public mutating func add(
        _ name: String, shape: [Int], values: [Float], as storage: Storage = .f32
    ) throws {
        func fail(_ reason: String) -> FormatError {
            FormatError(.invalidArgument, path: nil, tensor: name, reason: reason)
        }
        guard name != safeTensorsMetadataKey else { throw fail("the name is reserved") }
        guard entries[name] == nil else { throw fail("added twice") }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("negative dimension in \(shape)") }
        let count = shape.reduce(1, *)
        guard count == values.count else {
            throw fail(
                "shape \(shape) holds \(count) elements but \(values.count) values were given")
        }
        entries[name] = Entry(name: name, shape: shape, values: values, storage: storage)
    }

    /// Writes the file atomically (temporary file in the same directory, then rename).
    public func write(to path: String) throws {
        let layout = orderedEntries()
        let header = headerBytes(for: layout)
        try writeAtomically(to: path) { sink in
            var length: [UInt8] = []
            appendLittleEndian(UInt64(header.count), to: &length)
            try sink.write(length)
            try sink.write(header)
            for entry in layout {
                try writeData(of: entry, to: sink)
            }
        }
    }

    /// The tensors in file order: wider dtypes first, then by name. With the header padded to
    /// 8 bytes, this keeps every tensor aligned to its element size, so readers can use the
    /// data in place; sorting by name makes the bytes independent of insertion order.
    private func orderedEntries() -> [Entry] {
        entries.values.sorted {
            ($0.storage.dtype.byteSize, $1.name) > ($1.storage.dtype.byteSize, $0.name)
        }
    }

    /// The JSON header, padded with spaces to a multiple of 8 bytes, as safetensors pads it.
    private func headerBytes(for layout: [Entry]) -> [UInt8] {
        var members: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map {
                "\(jsonQuoted($0.key)):\(jsonQuoted($0.value))"
            }
            members.append(
                "\(jsonQuoted(safeTensorsMetadataKey)):{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for entry in layout {
            let size = entry.values.count * entry.storage.dtype.byteSize
            let shape = entry.shape.map(String.init).joined(separator: ",")
            members.append(
                "\(jsonQuoted(entry.name)):{\"dtype\":\"\(entry.storage.dtype.rawValue)\","
                    + "\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        var bytes = Array("{\(members.joined(separator: ","))}".utf8)
        bytes += [UInt8](repeating: UInt8(ascii: " "), count: (8 - bytes.count % 8) % 8)
        return bytes
    }

    /// Streams one tensor's elements, converting in chunks so F16 output needs no full copy.
    private func writeData(of entry: Entry, to sink: FileSink) throws {
        let chunk = 1 << 16
        var start = 0
        while start < entry.values.count {
            let end = min(start + chunk, entry.values.count)
            var bytes: [UInt8] = []
            bytes.reserveCapacity((end - start) * entry.storage.dtype.byteSize)
            for value in entry.values[start..<end] {
                switch entry.storage {
                case .f32: appendLittleEndian(value.bitPattern, to: &bytes)
                case .f16: appendLittleEndian(halfBitsFromFloat(value), to: &bytes)
                }
            }
            try sink.write(bytes)
            start = end
        }
    }
}

/// Appends the little-endian bytes of an integer.
@inline(__always)
private func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    for shift in stride(from: 0, to: T.bitWidth, by: 8) {
        bytes.append(UInt8(truncatingIfNeeded: value >> shift))
    }
}
