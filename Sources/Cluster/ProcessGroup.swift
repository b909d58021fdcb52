import Foundation

/// A failure of the process group (MPI missing, a call that failed), in one line.
public struct ClusterError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The processes one run is split over: the ranks `mpirun -n N duo ...` started (Open MPI),
/// or this process alone. Every rank runs the same command on the same inputs; the
/// collectives below keep them in step, and only rank 0 writes the run's outputs. Alone,
/// every collective is the identity, so a run without mpirun is what it always was.
public final class ProcessGroup: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    private let mpi: OpenMPI?

    /// The largest count one MPI call takes (its counts are C ints).
    static let chunk = 1 << 28

    private init(rank: Int, size: Int, mpi: OpenMPI?) {
        self.rank = rank
        self.size = size
        self.mpi = mpi
    }

    /// Rank 0 writes files and prints; the others only compute.
    public var isRoot: Bool { rank == 0 }

    /// The number of ranks mpirun says it started (Open MPI's OMPI_COMM_WORLD_SIZE), 1 when
    /// this process was not started by mpirun. Read from the environment, without MPI.
    public static var launchedSize: Int {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"].flatMap { Int($0) } ?? 1
    }

    nonisolated(unsafe) private static var started: ProcessGroup?

    /// The group of this run: started on first use (MPI_Init under mpirun with more than
    /// one rank; this process alone otherwise).
    public static func world() throws -> ProcessGroup {
        if let started { return started }
        let group: ProcessGroup
        if launchedSize > 1 {
            let mpi = try OpenMPI.open().get()
            let (rank, size) = try mpi.start()
            group = ProcessGroup(rank: rank, size: size, mpi: mpi)
        } else {
            group = ProcessGroup(rank: 0, size: 1, mpi: nil)
        }
        started = group
        return group
    }

    /// A group of this process alone (tests; commands that do not split their work).
    public static let single = ProcessGroup(rank: 0, size: 1, mpi: nil)

    /// Ends MPI at a normal exit (every rank must call it); nothing without MPI.
    public static func finish() {
        started?.mpi?.end()
    }

    /// Whether this run was started as more than one rank and MPI is up.
    public static var isSplit: Bool { (started?.size ?? 1) > 1 }

    /// Ends every rank after an error on one: the others may be waiting in a collective.
    /// Returns without MPI (the caller exits as usual).
    public static func abortIfSplit(code: Int32) {
        guard let group = started, let mpi = group.mpi, group.size > 1 else { return }
        mpi.abortAll(code: code)
    }

    /// Replaces `values` with their sum over every rank. Floats are summed in MPI's order,
    /// not one process's: results agree with one process's to float rounding.
    public func sum(_ values: inout [Float]) throws {
        guard let mpi, size > 1 else { return }
        try values.withUnsafeMutableBufferPointer { buffer in
            try chunks(buffer.count) { range in
                try mpi.allReduceInPlace(
                    buffer.baseAddress! + range.lowerBound, count: range.count, type: mpi.float,
                    operation: mpi.sum)
            }
        }
    }

    /// The sum of `value` over every rank.
    public func sum(_ value: Double) throws -> Double {
        guard let mpi, size > 1 else { return value }
        var total = value
        try mpi.allReduceInPlace(&total, count: 1, type: mpi.double, operation: mpi.sum)
        return total
    }

    /// Whether `flag` holds on any rank (a stop request seen by one rank stops them all).
    public func any(_ flag: Bool) throws -> Bool {
        guard let mpi, size > 1 else { return flag }
        var value: Int64 = flag ? 1 : 0
        try mpi.allReduceInPlace(&value, count: 1, type: mpi.int64, operation: mpi.max)
        return value != 0
    }

    /// Rank `root`'s bytes, on every rank.
    public func broadcast(_ bytes: [UInt8], from root: Int = 0) throws -> [UInt8] {
        guard let mpi, size > 1 else { return bytes }
        var length = Int64(rank == root ? bytes.count : 0)
        try mpi.broadcast(&length, count: 1, type: mpi.int64, root: root)
        var buffer = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length))
        try buffer.withUnsafeMutableBufferPointer { pointer in
            guard let base = pointer.baseAddress else { return }
            try chunks(pointer.count) { range in
                try mpi.broadcast(
                    base + range.lowerBound, count: range.count, type: mpi.byte, root: root)
            }
        }
        return buffer
    }

    /// Every rank's bytes, in rank order, on every rank.
    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        guard size > 1 else { return [bytes] }
        return try (0..<size).map { try broadcast(bytes, from: $0) }
    }

    /// Waits until every rank is here.
    public func barrier() throws {
        try mpi?.synchronize()
    }

    private func chunks(_ count: Int, _ body: (Range<Int>) throws -> Void) rethrows {
        var start = 0
        while start < count {
            let end = min(count, start + Self.chunk)
            try body(start..<end)
            start = end
        }
    }
}
