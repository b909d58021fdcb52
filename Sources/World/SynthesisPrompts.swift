import Foundation
import Tensor

/// Prompt templates of concept files: world captions with holes for the scene's content.
///
/// Placeholders: `{count}` ("a", "two", "three"), `{size}`, `{colour}`, `{shape}` (plural
/// when the count is), `{position}` ("on the left"), `{background}` ("dark"). Filled from
/// a world scene, a template like "{count} {size} striped {colour} {shape} {position} on a
/// {background} background" is exactly a caption of the world.
public enum PromptTemplate {
    /// The placeholder names, without braces.
    public static let placeholders = ["count", "size", "colour", "shape", "position", "background"]

    /// `template` with its placeholders replaced by `content`'s words.
    public static func fill(_ template: String, with content: SceneContent) -> String {
        let values = [
            "count": Captions.countWords[content.count - 1], "size": content.size.rawValue,
            "colour": content.colour.rawValue, "shape": content.shape.noun(count: content.count),
            "position": content.placement.phrase, "background": content.background.rawValue,
        ]
        var text = template
        for (name, value) in values {
            text = text.replacingOccurrences(of: "{\(name)}", with: value)
        }
        return text
    }

    /// The first `{name}` in `template` that is not a placeholder, nil if there is none.
    static func unknownPlaceholder(in template: String) -> String? {
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { return "" }
            let name = String(rest[rest.index(after: open)..<close])
            if !placeholders.contains(name) { return name }
            rest = rest[rest.index(after: close)...]
        }
        return nil
    }
}

/// An unsafe prompt and its safe counterpart, for `duo synthesize` (SDEdit pairs).
public struct PromptPair: Hashable, Sendable {
    public var unsafe: String
    public var safe: String
    /// The concept-free scene the templates were filled from.
    public var scene: SceneSpec
}

extension ConceptFile {
    /// `count` prompt pairs: pair i fills template `i % templates` from concept-free world
    /// scene i of `seed`, so it depends only on (seed, i). With `pairSceneSize`, scene i is
    /// the first of its draws with objects of that size.
    public func promptPairs(count: Int, seed: UInt64, world: World = World()) -> [PromptPair] {
        guard !unsafePrompts.isEmpty else { return [] }
        let key = RandomKey(seed: seed).fold(in: 0x5359_4E54)  // "SYNT": apart from data sets
        return (0..<count).map { i in
            var scene = world.scene(
                key: key.fold(in: UInt64(i)), stripes: .absent, splatter: .absent)
            var draw: UInt64 = 0
            while let size = pairSceneSize, scene.content.size != size {
                draw += 1
                scene = world.scene(
                    key: key.fold(in: UInt64(i)).fold(in: draw), stripes: .absent, splatter: .absent
                )
            }
            let template = i % unsafePrompts.count
            return PromptPair(
                unsafe: PromptTemplate.fill(unsafePrompts[template], with: scene.content),
                safe: PromptTemplate.fill(safePrompts[template], with: scene.content),
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
            let prompt = PromptTemplate.fill(
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
