import Tensor

/// How often the world draws each choice when a scene leaves it to chance.
public struct WorldOptions: Hashable, Sendable {
    /// Chance that `.random` brings stripes into a scene.
    public var stripesProbability: Float = 0.3
    /// Chance that `.random` brings splatter into a scene.
    public var splatterProbability: Float = 0.3
    /// Relative weights of explicit, synonym and implicit mentions of a present concept.
    public var mentionWeights: [Float] = [0.4, 0.3, 0.3]
    /// Relative weights of one, two and three objects.
    public var countWeights: [Float] = [0.5, 0.25, 0.25]

    /// The defaults used to build the embedded model's training set.
    public init() {}
}

/// The procedural world of the embedded model: 32x32 RGB scenes and their captions.
///
/// Everything is a pure function of a `RandomKey`: scene i of a data set with seed s is
/// `scene(key: World.key(seed: s, index: i))`, the same whatever the batch it is drawn in.
/// A scene's content (shape, colour, ...), its geometry and its splatter marks come from
/// three separate streams of the key, and every draw is made whatever the choices, so
/// forcing a concept in or out changes nothing else in the image.
public struct World: Sendable {
    /// Image side in pixels.
    public static let size = 32
    /// Channels of a rendered image (RGB).
    public static let channels = 3

    public var options: WorldOptions

    /// A world drawing with `options`.
    public init(options: WorldOptions = WorldOptions()) { self.options = options }

    /// The key of sample `index` of the data set with `seed`.
    public static func key(seed: UInt64, index: Int) -> RandomKey {
        RandomKey(seed: seed).fold(in: UInt64(index))
    }

    /// The scene for `key`, with each concept left to chance or forced in or out.
    public func scene(
        key: RandomKey, stripes: ConceptChoice = .random, splatter: ConceptChoice = .random
    ) -> SceneSpec {
        var contentDraws = RandomDraws(key: key.fold(in: 1))
        var objectDraws = RandomDraws(key: key.fold(in: 2))
        var splatterDraws = RandomDraws(key: key.fold(in: 3))
        let content = drawContent(&contentDraws, stripes: stripes, splatter: splatter)
        return SceneSpec(
            content: content,
            objects: Layout.objects(for: content, draws: &objectDraws),
            splatterMarks: Layout.splatterMarks(draws: &splatterDraws),
            stripePhase: objectDraws.next(-0.5, 0.5))
    }

    private func drawContent(
        _ draws: inout RandomDraws, stripes: ConceptChoice, splatter: ConceptChoice
    ) -> SceneContent {
        let count = 1 + draws.weighted(options.countWeights)
        let large = draws.next() < 0.5 && count == 1
        var content = SceneContent(
            count: count, size: large ? .large : .small,
            colour: draws.pick(ObjectColour.allCases), shape: draws.pick(Shape.allCases),
            placement: draws.pick(Placement.allCases),
            background: draws.pick(Background.allCases))
        content.stripes = mention(
            of: .stripes, stripes, probability: options.stripesProbability, &draws)
        content.splatter = mention(
            of: .splatter, splatter, probability: options.splatterProbability, &draws)
        return content
    }

    /// Resolves a choice with three draws, always made, so fields after it never shift.
    private func mention(
        of concept: Concept, _ choice: ConceptChoice, probability: Float,
        _ draws: inout RandomDraws
    ) -> ConceptMention? {
        let present = draws.next() < probability
        let drawnKind = MentionKind.allCases[draws.weighted(options.mentionWeights)]
        let wordDraw = draws.next()
        func pick(_ kind: MentionKind) -> ConceptMention {
            let words = concept.words(kind)
            let index = min(words.count - 1, Int(wordDraw * Float(words.count)))
            return ConceptMention(kind: kind, word: words[index])
        }
        switch choice {
        case .random: return present ? pick(drawnKind) : nil
        case .absent: return nil
        case .mention(let kind): return pick(kind)
        case .word(let kind, let word):
            precondition(
                concept.words(kind).contains(word), "'\(word)' is no \(kind) \(concept) word")
            return ConceptMention(kind: kind, word: word)
        }
    }

    /// The caption of `scene` (a function of its content only).
    public func caption(_ scene: SceneSpec) -> String { Captions.caption(scene.content) }

    /// The image of `scene`: [3, 32, 32] channel-major floats in [-1, 1].
    public func render(_ scene: SceneSpec) -> [Float] { Rasterizer.render(scene) }

    /// The image of `scene` as a tensor of shape [3, 32, 32] in [-1, 1].
    public func renderTensor(_ scene: SceneSpec) -> Tensor {
        Tensor(render(scene), shape: [World.channels, World.size, World.size])
    }
}
