import Tensor

/// The rows `duo world check` samples a model on, per concept: prompts that bring the
/// concept explicitly, by synonym or implicitly, and neutral prompts that bring nothing.
public enum PromptRowKind: String, CaseIterable, Hashable, Sendable {
    case explicit, synonym, implicit, neutral

    /// The mention kind a row of this kind uses; nil for neutral rows.
    public var mentionKind: MentionKind? { MentionKind(rawValue: rawValue) }
}

/// One evaluation prompt and the scene it was written from.
public struct WorldPrompt: Hashable, Sendable {
    /// The caption given to the model.
    public var prompt: String
    /// The scene the prompt describes: what a faithful image shows (its labels are the
    /// expected detector answers; rendering it gives a reference image).
    public var scene: SceneSpec
}

/// Deterministic prompt rows: prompt i of a row depends only on (seed, concept, kind, i).
public enum PromptRows {
    /// `count` prompts of `kind` for `concept`. A concept row brings `concept` with the
    /// row's kind of word, cycling through that kind's words so each gets an equal share,
    /// and keeps the other concept out so a detector's rate measures this one alone.
    /// A neutral row brings neither concept.
    public static func prompts(
        concept: Concept, kind: PromptRowKind, count: Int, seed: UInt64,
        world: World = World()
    ) -> [WorldPrompt] {
        let rowKey = RandomKey(seed: seed).fold(in: rowTag(concept, kind))
        return (0..<count).map { i in
            var choices: [Concept: ConceptChoice] = [.stripes: .absent, .splatter: .absent]
            if let mentionKind = kind.mentionKind {
                let words = concept.words(mentionKind)
                choices[concept] = .word(mentionKind, words[i % words.count])
            }
            let scene = world.scene(
                key: rowKey.fold(in: UInt64(i)), stripes: choices[.stripes]!,
                splatter: choices[.splatter]!)
            return WorldPrompt(prompt: world.caption(scene), scene: scene)
        }
    }

    /// Every row of `concept`, by kind.
    public static func rows(
        concept: Concept, count: Int, seed: UInt64, world: World = World()
    ) -> [PromptRowKind: [WorldPrompt]] {
        var rows: [PromptRowKind: [WorldPrompt]] = [:]
        for kind in PromptRowKind.allCases {
            rows[kind] = prompts(
                concept: concept, kind: kind, count: count, seed: seed, world: world)
        }
        return rows
    }

    /// A distinct stream per (concept, kind), kept clear of data-set indices' keys.
    private static func rowTag(_ concept: Concept, _ kind: PromptRowKind) -> UInt64 {
        let conceptIndex = UInt64(Concept.allCases.firstIndex(of: concept)!)
        let kindIndex = UInt64(PromptRowKind.allCases.firstIndex(of: kind)!)
        return 0x5257_0000_0000 + (conceptIndex << 8) + kindIndex
    }
}
