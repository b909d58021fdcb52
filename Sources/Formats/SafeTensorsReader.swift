import CKernels

/// A safetensors file, memory-mapped and validated on open.
///
/// Opening maps the file and checks the whole header (lengths, JSON, dtypes, shapes, byte
/// sizes, bounds, overlaps); tensor data is paged in only when a tensor is read, so listing a
/// multi-gigabyte checkpoint is cheap. Every error names the file, and the tensor if any.
///
/// ```swift
/// let file = try SafeTensorsReader(path: "unet/diffusion_pytorch_model.safetensors")
/// for tensor in file.tensors { print(tensor.name, tensor.shape) }
/// let weight = try file.floats("conv_in.weight")
/// ```
public final class SafeTensorsReader: @unchecked Sendable {
    // Immutable after init, and the mapping is read-only: safe to share across threads.

    /// The path the file was opened by, as given.
    public let path: String
    /// The tensors, in the order of their data offsets in the file.
    public let tensors: [SafeTensorInfo]
    /// The header's `__metadata__` map (empty when absent).
    public let metadata: [String: String]

    private let file: MappedFile
    private let dataStart: Int
    private let indexByName: [String: Int]

    /// Maps and validates the file at `path`.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let header = try SafeTensorsHeader.parse(file.bytes, path: path)
        tensors = header.tensors
        metadata = header.metadata
        dataStart = header.dataStart
        indexByName = Dictionary(
            tensors.enumerated().map { ($0.element.name, $0.offset) },
            uniquingKeysWith: { first, _ in first })
    }

    /// The tensor names, in file order.
    public var names: [String] { tensors.map(\.name) }

    /// The description of tensor `name`; throws `missingTensor` if the file has none.
    public func info(_ name: String) throws -> SafeTensorInfo {
        guard let index = indexByName[name] else {
            throw FormatError(.missingTensor, path: path, tensor: name, reason: "no such tensor")
        }
        return tensors[index]
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool {
        indexByName[name] != nil
    }

    /// Tensor `name`'s elements as Floats, row-major. F32 is copied as is; F16 and BF16
    /// are widened exactly. Other dtypes throw `unsupportedDType`.
    public func floats(_ name: String) throws -> [Float] {
        let count = try info(name).elementCount
        return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try convert(name, into: buffer)
            initialized = count
        }
    }

    /// Converts tensor `name` into `destination` (exactly its element count), reading the
    /// file in chunks rather than through the memory map: loading a large checkpoint this
    /// way needs no copy beyond the destination and never keeps the file resident.
    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let info = try info(name)
        precondition(
            destination.count == info.elementCount,
            "destination of \(destination.count) for \(info.shape)")
        guard [.f32, .f16, .bf16].contains(info.dtype) else {
            return try convert(name, into: destination)
        }
        let size = info.dtype.byteSize
        let start = dataStart + info.dataOffsets.lowerBound
        try readRange(path, start..<(start + info.byteCount), chunkBytes: size << 22) {
            chunk, offset in
            let first = offset / size
            let part = UnsafeMutableBufferPointer(
                rebasing: destination[first..<(first + chunk.count / size)])
            _ = Self.convert(chunk, dtype: info.dtype, into: part)
        }
    }

    private func convert(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws
    {
        let info = try info(name)
        precondition(
            destination.count == info.elementCount,
            "destination of \(destination.count) for \(info.shape)")
        let converted = try withUnsafeRawBytes(name) { raw in
            Self.convert(raw, dtype: info.dtype, into: destination)
        }
        guard converted else {
            throw FormatError(
                .unsupportedDType, path: path, tensor: name,
                reason: "dtype \(info.dtype.rawValue) cannot be read as floats "
                    + "(supported: F32, F16, BF16)")
        }
    }

    /// Little-endian F32, F16 or BF16 elements into Floats; false for any other dtype.
    private static func convert(
        _ raw: UnsafeRawBufferPointer, dtype: SafeTensorsDType,
        into out: UnsafeMutableBufferPointer<Float>
    ) -> Bool {
        func halves(
            _ widen: (UInt16) -> Float,
            _ kernel: (UnsafePointer<UInt16>?, UnsafeMutablePointer<Float>?, Int) -> Void
        ) {
            // The vectorized C conversion when the data is aligned (it is in files whose
            // writer padded the header, as safetensors' own does).
            if isLittleEndianHost, let base = raw.baseAddress, Int(bitPattern: base) % 2 == 0 {
                kernel(base.assumingMemoryBound(to: UInt16.self), out.baseAddress, out.count)
                return
            }
            for i in out.indices {
                out[i] = widen(
                    UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        }
        switch dtype {
        case .f32 where isLittleEndianHost:
            // The common case for large checkpoints: one memcpy out of the mapping.
            UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
        case .f32:
            for i in out.indices {
                out[i] = Float(
                    bitPattern: UInt32(
                        littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f16: halves(floatFromHalfBits, duo_f16_to_f32)
        case .bf16: halves(floatFromBFloat16Bits, duo_bf16_to_f32)
        default: return false
        }
        return true
    }

    /// Calls `body` with tensor `name`'s bytes, straight from the mapping (no copy).
    /// The buffer is valid only during the call.
    public func withUnsafeRawBytes<Result>(
        _ name: String, _ body: (UnsafeRawBufferPointer) throws -> Result
    ) throws -> Result {
        let info = try info(name)
        let start = dataStart + info.dataOffsets.lowerBound
        let bytes = UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + info.byteCount)])
        return try withExtendedLifetime(file) { try body(bytes) }
    }

    /// Calls `body` with tensor `name`'s F32 elements without copying them, when the data
    /// is 4-byte aligned in the mapping (it is in files whose writer padded the header, as
    /// safetensors' own does); a misaligned tensor is copied first. Throws
    /// `unsupportedDType` for anything but F32. The buffer is valid only during the call.
    public func withUnsafeFloat32Buffer<Result>(
        _ name: String, _ body: (UnsafeBufferPointer<Float>) throws -> Result
    ) throws -> Result {
        let info = try info(name)
        guard info.dtype == .f32 else {
            throw FormatError(
                .unsupportedDType, path: path, tensor: name,
                reason: "dtype \(info.dtype.rawValue) is not F32")
        }
        return try withUnsafeRawBytes(name) { raw in
            let aligned = Int(bitPattern: raw.baseAddress) % MemoryLayout<Float>.alignment == 0
            guard aligned, isLittleEndianHost else {
                let copy = try floats(name)
                return try copy.withUnsafeBufferPointer(body)
            }
            return try body(raw.assumingMemoryBound(to: Float.self))
        }
    }
}

/// Safetensors data is little-endian; only on such a host can it be used in place.
private let isLittleEndianHost = 1.littleEndian == 1
