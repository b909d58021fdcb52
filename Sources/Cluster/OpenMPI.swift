import Foundation

/// Open MPI's C interface, opened at run time (dlopen) so that duo builds and runs without
/// MPI installed; only a process started by Open MPI's `mpirun` loads it. Handles such as
/// `MPI_COMM_WORLD`, `MPI_FLOAT` and `MPI_SUM` are the addresses of Open MPI's predefined
/// objects (`ompi_mpi_comm_world`, ...), as its mpi.h defines them; `MPI_IN_PLACE` is 1.
final class OpenMPI {
    typealias Handle = UnsafeMutableRawPointer

    /// The shared library names tried in turn (Debian's libopenmpi3 ships the first).
    static let libraryNames = ["libmpi.so.40", "libmpi.so"]

    let commWorld: Handle
    let float: Handle
    let double: Handle
    let byte: Handle
    let int64: Handle
    let sum: Handle
    let max: Handle

    private let initialize: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    private let finalize: @convention(c) () -> Int32
    private let commRank: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    private let commSize: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    private let allreduce:
        @convention(c) (
            UnsafeRawPointer?, UnsafeMutableRawPointer, Int32, Handle, Handle, Handle
        ) -> Int32
    private let bcast:
        @convention(c) (UnsafeMutableRawPointer, Int32, Handle, Int32, Handle) -> Int32
    private let barrier: @convention(c) (Handle) -> Int32
    private let abort: @convention(c) (Handle, Int32) -> Int32

    /// Opens the library and looks up every symbol; nil with the reason when it cannot.
    static func open() -> Result<OpenMPI, ClusterError> {
        var reasons: [String] = []
        for name in libraryNames {
            guard let library = dlopen(name, RTLD_NOW | RTLD_GLOBAL) else {
                reasons.append(String(cString: dlerror()))
                continue
            }
            do {
                return .success(try OpenMPI(library: library))
            } catch let error as ClusterError {
                return .failure(error)
            } catch {
                return .failure(ClusterError("\(name): \(error)"))
            }
        }
        return .failure(
            ClusterError(
                "started by mpirun, but Open MPI's library cannot be loaded (\(reasons.joined(separator: "; "))): "
                    + "install Open MPI (Debian: openmpi-bin)"))
    }

    private init(library: UnsafeMutableRawPointer) throws {
        func symbol(_ name: String) throws -> Handle {
            guard let address = dlsym(library, name) else {
                throw ClusterError(
                    "Open MPI's library has no \(name): duo speaks Open MPI's interface (4.x)")
            }
            return address
        }
        func function<F>(_ name: String, as type: F.Type) throws -> F {
            unsafeBitCast(try symbol(name), to: type)
        }
        commWorld = try symbol("ompi_mpi_comm_world")
        float = try symbol("ompi_mpi_float")
        double = try symbol("ompi_mpi_double")
        byte = try symbol("ompi_mpi_byte")
        int64 = try symbol("ompi_mpi_int64_t")
        sum = try symbol("ompi_mpi_op_sum")
        max = try symbol("ompi_mpi_op_max")
        initialize = try function("MPI_Init", as: type(of: initialize))
        finalize = try function("MPI_Finalize", as: type(of: finalize))
        commRank = try function("MPI_Comm_rank", as: type(of: commRank))
        commSize = try function("MPI_Comm_size", as: type(of: commSize))
        allreduce = try function("MPI_Allreduce", as: type(of: allreduce))
        bcast = try function("MPI_Bcast", as: type(of: bcast))
        barrier = try function("MPI_Barrier", as: type(of: barrier))
        abort = try function("MPI_Abort", as: type(of: abort))
    }

    /// MPI_Init, then this process's rank and the number of ranks in MPI_COMM_WORLD.
    func start() throws -> (rank: Int, size: Int) {
        try check(initialize(nil, nil), "MPI_Init")
        var rank: Int32 = 0
        var size: Int32 = 0
        try check(commRank(commWorld, &rank), "MPI_Comm_rank")
        try check(commSize(commWorld, &size), "MPI_Comm_size")
        return (Int(rank), Int(size))
    }

    /// Sums (or takes the maximum of) `count` values of `type` in place over every rank.
    func allReduceInPlace(
        _ buffer: UnsafeMutableRawPointer, count: Int, type: Handle, operation: Handle
    ) throws {
        // MPI_IN_PLACE is (void *) 1 in Open MPI's mpi.h.
        let inPlace = UnsafeRawPointer(bitPattern: 1)
        try check(
            allreduce(inPlace, buffer, Int32(count), type, operation, commWorld), "MPI_Allreduce")
    }

    func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int, type: Handle, root: Int) throws {
        try check(bcast(buffer, Int32(count), type, Int32(root), commWorld), "MPI_Bcast")
    }

    func synchronize() throws { try check(barrier(commWorld), "MPI_Barrier") }

    func end() { _ = finalize() }

    /// Ends every rank of the job (mpirun reports `code`).
    func abortAll(code: Int32) -> Never {
        _ = abort(commWorld, code)
        exit(code)
    }

    private func check(_ status: Int32, _ call: String) throws {
        // Open MPI's default error handler aborts the job on an error; a handler that
        // returns codes instead still gets a line here.
        guard status == 0 else { throw ClusterError("\(call) failed with MPI error \(status)") }
    }
}
