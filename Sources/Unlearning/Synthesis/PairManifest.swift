import Formats
import Foundation

/// One kept pair: a line of `manifest.jsonl`.
public struct PairRecord: Hashable, Sendable {
    public var index: Int
    public var unsafePrompt: String
    public var safePrompt: String
    /// Which draw of each side was kept (0: the first), so a pair can be made again alone.
    public var unsafeDraw: Int
    public var safeDraw: Int
    /// The detector's scores; nil where no detector scored the pair (`--no-filter`
    /// without one).
    public var unsafeScore: Double?
    public var safeScore: Double?
    /// What scored the pair: the detector's identity, and what it declared about itself
    /// (nil: it declared nothing). Kept per pair, as a resumed run may use another detector
    /// process than the one that made the earlier pairs.
    public var detector: String
    public var detectorDeclaration: DetectorDeclaration?

    /// File names relative to the manifest.
    public var unsafeFile: String { String(format: "unsafe/%05d.png", index) }
    public var safeFile: String { String(format: "safe/%05d.png", index) }

    func jsonLine(_ settings: PairSettings) -> String {
        var fields: JSONFields = [
            ("index", .number(index)), ("unsafe_prompt", .string(unsafePrompt)),
            ("safe_prompt", .string(safePrompt)), ("seed", .number(String(settings.seed))),
            ("unsafe_draw", .number(unsafeDraw)), ("safe_draw", .number(safeDraw)),
            ("strength", .number(shortest: settings.strength)), ("steps", .number(settings.steps)),
            ("guidance", .number(shortest: settings.guidance)), ("model", .string(settings.model)),
            ("weights_sha256", .string(settings.weightsDigest)),
            ("detector", .string(detector)),
            ("detector_info", detectorDeclaration?.value ?? .null),
            ("unsafe_score", .number(unsafeScore, format: "%.6f")),
            ("safe_score", .number(safeScore, format: "%.6f")),
            ("unsafe", .string(unsafeFile)), ("safe", .string(safeFile)),
        ]
        if let unsafeGuidance = settings.unsafeGuidance {
            fields.insert(("unsafe_guidance", .number(shortest: unsafeGuidance)), at: 9)
        }
        return JSONValue.object(fields).line
    }

    /// Reads a manifest line; nil when it is not a complete record (a line cut short by a
    /// killed run).
    init?(jsonLine line: Substring) {
        guard let value = try? JSONParser.parse(Array(line.utf8)),
            let index = value["index"]?.int, let unsafePrompt = value["unsafe_prompt"]?.string,
            let safePrompt = value["safe_prompt"]?.string,
            let unsafeDraw = value["unsafe_draw"]?.int, let safeDraw = value["safe_draw"]?.int,
            let unsafeScore = value["unsafe_score"], let safeScore = value["safe_score"],
            let detector = value["detector"]?.string
        else { return nil }
        self.init(
            index: index, unsafePrompt: unsafePrompt, safePrompt: safePrompt,
            unsafeDraw: unsafeDraw, safeDraw: safeDraw, unsafeScore: unsafeScore.double,
            safeScore: safeScore.double, detector: detector,
            detectorDeclaration: value["detector_info"].flatMap { try? DetectorDeclaration($0) })
    }

    init(
        index: Int, unsafePrompt: String, safePrompt: String, unsafeDraw: Int, safeDraw: Int,
        unsafeScore: Double?, safeScore: Double?, detector: String,
        detectorDeclaration: DetectorDeclaration?
    ) {
        self.index = index
        self.unsafePrompt = unsafePrompt
        self.safePrompt = safePrompt
        self.unsafeDraw = unsafeDraw
        self.safeDraw = safeDraw
        self.unsafeScore = unsafeScore
        self.safeScore = safeScore
        self.detector = detector
        self.detectorDeclaration = detectorDeclaration
    }
}

/// A pairs folder's `manifest.jsonl`, one `PairRecord` per line, appended a batch at a
/// time so that a killed run loses at most the batch it was making.
public enum PairManifest {
    /// The records of `path` that form whole batches of `batchSize` in order from index 0;
    /// a trailing partial batch (or a torn line) is dropped, as its batch will be made again.
    public static func read(_ path: String, batchSize: Int, count: Int) -> [PairRecord] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        var records: [PairRecord] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let record = PairRecord(jsonLine: line), record.index == records.count else {
                break
            }
            records.append(record)
        }
        let whole = records.count == count ? count : records.count / batchSize * batchSize
        return Array(records.prefix(whole))
    }

    /// Appends `records` with one write, flushed to disk.
    static func append(_ records: [PairRecord], settings: PairSettings, to path: String) throws {
        try AppendFile.append(
            records.map { $0.jsonLine(settings) + "\n" }.joined(), to: path, flush: true)
    }

    /// Rewrites the manifest with `records` only (dropping a torn tail before appending).
    static func rewrite(_ records: [PairRecord], settings: PairSettings, to path: String) throws {
        try AtomicFile.write(records.map { $0.jsonLine(settings) + "\n" }.joined(), to: path)
    }
}
