import Concepts
import Foundation
import Tensor

/// The world's placeholders in concept files' templates, filled from a scene.
///
/// `{count}` ("a", "two", "three"), `{size}`, `{colour}`, `{shape}` (plural when the count
/// is), `{position}` ("on the left"), `{background}` ("dark"). Filled from a world scene, a
/// template like "{count} {size} striped {colour} {shape} {position} on a {background}
/// background" is exactly a caption of the world.
public enum WorldTemplate {
    /// The placeholder names, without braces.
    public static let placeholders = ["count", "size", "colour", "shape", "position", "background"]

    /// `template` with its placeholders replaced by `content`'s words.
    public static func fill(_ template: String, with content: SceneContent) -> String {
        PromptTemplate.fill(
            template,
            with: [
                "count": Captions.countWords[content.count - 1], "size": content.size.rawValue,
                "colour": content.colour.rawValue,
                "shape": content.shape.noun(count: content.count),
                "position": content.placement.phrase, "background": content.background.rawValue,
            ])
    }
}

/// An unsafe prompt, its safe counterpart and the concept-free scene both were filled from.
public struct ScenePromptPair: Hashable, Sendable {
    public var prompts: PromptPair
    public var scene: SceneSpec
}

/// The world's `PromptFiller`: templates filled from world scenes (see `WorldTemplate`).
public struct WorldPrompts: PromptFiller {
    public var world: World

    public init(world: World = World()) {
        self.world = world
    }

    public func check(_ concept: ConceptFile) throws {
        for (key, template) in concept.templates {
            for name in try PromptTemplate.placeholders(in: template)
            where !WorldTemplate.placeholders.contains(name) {
                throw concept.problem(
                    "unknown placeholder '{\(name)}' in \"\(template)\" (the world's: "
                        + WorldTemplate.placeholders.joined(separator: ", ") + ")", key: key)
            }
        }
        if let size = concept.pairSceneSize, ObjectSize(rawValue: size) == nil {
            throw concept.problem(
                "expected one of \(ObjectSize.allCases.map(\.rawValue).joined(separator: ", ")), "
                    + "found '\(size)'", key: "prompts.size")
        }
    }

    public func pairPrompts(_ concept: ConceptFile, count: Int, seed: UInt64) throws
        -> [PromptPair]
    {
        try check(concept)
        return concept.scenePromptPairs(count: count, seed: seed, world: world).map(\.prompts)
    }

    public func keepPrompts(_ concept: ConceptFile, count: Int, seed: UInt64) throws -> [String] {
        try check(concept)
        return concept.keepPrompts(count: count, seed: seed, world: world).map(\.prompt)
    }
}

extension ConceptFile {
    /// `count` prompt pairs: pair i fills template `i % templates` from concept-free world
    /// scene i of `seed`, so it depends only on (seed, i). With `pairSceneSize`, scene i is
    /// the first of its draws with objects of that size.
    public func scenePromptPairs(count: Int, seed: UInt64, world: World = World())
        -> [ScenePromptPair]
    {
        guard !unsafePrompts.isEmpty else { return [] }
        let key = RandomKey(seed: seed).fold(in: 0x5359_4E54)  // "SYNT": apart from data sets
        return (0..<count).map { i in
            var scene = world.scene(
                key: key.fold(in: UInt64(i)), stripes: .absent, splatter: .absent)
            var draw: UInt64 = 0
            while let size = pairSceneSize.flatMap(ObjectSize.init(rawValue:)),
                scene.content.size != size
            {
                draw += 1
                scene = world.scene(
                    key: key.fold(in: UInt64(i)).fold(in: draw), stripes: .absent, splatter: .absent
                )
            }
            let template = i % unsafePrompts.count
            return ScenePromptPair(
                prompts: PromptPair(
                    unsafe: WorldTemplate.fill(unsafePrompts[template], with: scene.content),
                    safe: WorldTemplate.fill(safePrompts[template], with: scene.content)),
                scene: scene)
        }
    }
}

extension ConceptFile {
    /// `count` keep prompts for prior preservation, with the world scene each describes
    /// when it is a world caption: prompt i fills keep template `i % templates` from
    /// concept-free scene i of `seed`; a template that names the other concept gets the
    /// same scene with that concept drawn, so its real image is what the prompt asks for.
    /// The scene is nil for a template that is no world caption (a real model's prompts).
    public func keepPrompts(count: Int, seed: UInt64, world: World = World()) -> [(
        prompt: String, scene: SceneSpec?
    )] {
        guard !keepPrompts.isEmpty else { return [] }
        let key = RandomKey(seed: seed).fold(in: 0x4B45_4550)  // "KEEP"
        return (0..<count).map { i in
            let sceneKey = key.fold(in: UInt64(i))
            let plain = world.scene(key: sceneKey, stripes: .absent, splatter: .absent)
            let prompt = WorldTemplate.fill(
                keepPrompts[i % keepPrompts.count], with: plain.content)
            guard let parsed = try? Captions.parse(prompt) else { return (prompt, nil) }
            let choice = { (m: ConceptMention?) in
                m.map { ConceptChoice.word($0.kind, $0.word) } ?? .absent
            }
            let scene = world.scene(
                key: sceneKey, stripes: choice(parsed.stripes), splatter: choice(parsed.splatter))
            return (prompt, scene)
        }
    }
}
