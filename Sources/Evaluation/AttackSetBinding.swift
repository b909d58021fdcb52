import Concepts
import Formats

/// Attack sets made against one model (`ConceptFile.AttackSetFile.against`). A white-box
/// attack (UnlearnDiffAtk, Concept Inversion, Ring-A-Bell given an adapter) optimizes its
/// prompts against one model, so DUO's tables (Park et al. 2024, Table 1) measure each
/// model under the set made against it. The sets of one name are one column of the report:
/// one set for every model, or sets bound to distinct models, each sampled for its model
/// alone.
public enum AttackSetBinding {
    /// Set names in first-seen order: the report's columns.
    public static func columns(_ names: [String]) -> [String] {
        var seen: Set<String> = []
        return names.filter { seen.insert($0).inserted }
    }

    /// Checks that each name is one set for every model or sets bound to distinct models
    /// among `labels`; the first problem as a one-line error.
    public static func check(_ sets: [ConceptFile.AttackSetFile], labels: [String]) throws {
        for name in columns(sets.map(\.name)) {
            let named = sets.filter { $0.name == name }
            let bound = named.compactMap(\.against)
            guard !bound.isEmpty else {
                guard named.count == 1 else {
                    throw OneLineError(
                        "attack set '\(name)' given \(named.count) times for every model; give one, or bind each to its model as NAME=PATH@LABEL"
                    )
                }
                continue
            }
            guard bound.count == named.count else {
                throw OneLineError(
                    "attack set '\(name)' given both for every model (NAME=PATH) and against one (NAME=PATH@LABEL); bind every set of a name or none"
                )
            }
            if let label = bound.first(where: { !labels.contains($0) }) {
                throw OneLineError(
                    "attack set '\(name)' made against '\(label)': no model has that label (models: \(labels.joined(separator: ", ")))"
                )
            }
            if let label = bound.first(where: { l in bound.filter { $0 == l }.count > 1 }) {
                throw OneLineError("attack set '\(name)': two sets made against '\(label)'")
            }
        }
    }
}
