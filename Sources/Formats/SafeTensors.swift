// The safetensors format (https://huggingface.co/docs/safetensors):
//
//   [8 bytes]  N, the header length, unsigned 64-bit little-endian
//   [N bytes]  a UTF-8 JSON object: tensor name → {"dtype", "shape", "data_offsets"},
//              plus an optional "__metadata__" string → string map
//   [rest]     the data region; data_offsets [begin, end) are relative to its start
//
// Tensors are stored little-endian, row-major, densely packed. Nothing in the file is
// executable, which is why duo reads weights only in this format.

/// An element type a safetensors header may name.
///
/// All are recognized so any checkpoint can be listed; `SafeTensorsReader.floats(_:)`
/// converts only the floating-point types models are stored in (F32, F16, BF16).
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u64 = "U64"
    case u32 = "U32"
    case u16 = "U16"
    case u8 = "U8"
    case bool = "BOOL"
    case f8E4M3 = "F8_E4M3"
    case f8E5M2 = "F8_E5M2"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool, .f8E4M3, .f8E5M2: return 1
        }
    }
}

/// One tensor as the header describes it.
public struct SafeTensorInfo: Equatable, Sendable {
    /// The checkpoint key, e.g. `down_blocks.0.attentions.1.proj_in.weight`.
    public let name: String
    /// The element type.
    public let dtype: SafeTensorsDType
    /// The shape; `[]` is a scalar (one element), a 0 anywhere means no elements.
    public let shape: [Int]
    /// The tensor's bytes, relative to the start of the data region.
    public let dataOffsets: Range<Int>

    /// Creates a description; the reader validates these before handing them out.
    public init(name: String, dtype: SafeTensorsDType, shape: [Int], dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }

    /// The number of elements: the product of the shape (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The number of bytes the tensor occupies.
    public var byteCount: Int { dataOffsets.count }
}

/// The header key under which safetensors keeps its string → string metadata.
let safeTensorsMetadataKey = "__metadata__"

/// Headers larger than this are refused before reading them, as the reference
/// implementation does: a corrupt length must not make us allocate gigabytes.
let safeTensorsMaxHeaderLength = 100_000_000
