/// What a world scene is made of: the discrete choices a caption states (`SceneContent`)
/// and the geometry a renderer draws (`SceneSpec`).
///
/// Every object of a scene shares one shape, colour and size, so a scene's "main object"
/// is never ambiguous: a detector's shape and colour heads have one right answer.

/// The five shapes, chosen to stay distinguishable at 32x32 even when small (no
/// rotations: a rotated square would be a diamond).
public enum Shape: String, CaseIterable, Hashable, Sendable {
    case circle, square, triangle, diamond, cross

    /// The caption noun for `count` objects ("circle", "circles").
    public func noun(count: Int) -> String {
        count == 1 ? rawValue : rawValue + (self == .cross ? "es" : "s")
    }
}

/// Six saturated hues, far apart so a small model and a detector can tell them apart.
public enum ObjectColour: String, CaseIterable, Hashable, Sendable {
    case red, green, blue, yellow, purple, orange

    /// sRGB, 0...255.
    public var rgb: (UInt8, UInt8, UInt8) {
        switch self {
        case .red: return (225, 35, 35)
        case .green: return (40, 175, 60)
        case .blue: return (40, 90, 235)
        case .yellow: return (240, 215, 40)
        case .purple: return (150, 60, 205)
        case .orange: return (250, 140, 25)
        }
    }
}

/// Object size; `large` only ever comes with a single object (three large shapes do not
/// fit in 32x32 without overlapping).
public enum ObjectSize: String, CaseIterable, Hashable, Sendable {
    case small, large
}

/// Where the objects stand: the one object sits at that spot; several stand in a line
/// along that side (a column for left/right, a row for top/bottom/center).
public enum Placement: String, CaseIterable, Hashable, Sendable {
    case left, right, top, bottom, center

    /// The caption phrase.
    public var phrase: String {
        switch self {
        case .left: return "on the left"
        case .right: return "on the right"
        case .top: return "at the top"
        case .bottom: return "at the bottom"
        case .center: return "in the center"
        }
    }
}

/// Plain backgrounds, all neutral grays so that no object colour blends into them.
public enum Background: String, CaseIterable, Hashable, Sendable {
    case dark, gray, light

    /// sRGB, 0...255.
    public var rgb: (UInt8, UInt8, UInt8) {
        switch self {
        case .dark: return (35, 35, 45)
        case .gray: return (128, 128, 128)
        case .light: return (232, 232, 226)
        }
    }

    /// The colour of stripes on this background: light on dark, near-black otherwise,
    /// so that the bands always stand out from the background around the object.
    public var stripeRGB: (UInt8, UInt8, UInt8) {
        self == .dark ? (240, 240, 240) : (20, 20, 20)
    }
}

/// The discrete content of a scene: exactly what its caption says, and what a caption
/// parses back to. Concept presence follows the mentions: a concept is in the image
/// if and only if the caption brings it (explicitly, by synonym or implicitly).
public struct SceneContent: Hashable, Sendable {
    /// 1, 2 or 3 objects.
    public var count: Int
    public var size: ObjectSize
    public var colour: ObjectColour
    public var shape: Shape
    public var placement: Placement
    /// The background drawn; not named in the caption when splatter is brought by an
    /// implicit setting ("at a crime scene"), which takes the background phrase's place.
    public var background: Background
    /// How the caption brings stripes, or nil when the objects are plain.
    public var stripes: ConceptMention?
    /// How the caption brings splatter, or nil when there is none.
    public var splatter: ConceptMention?

    /// Content with every field given.
    public init(
        count: Int, size: ObjectSize, colour: ObjectColour, shape: Shape,
        placement: Placement, background: Background,
        stripes: ConceptMention? = nil, splatter: ConceptMention? = nil
    ) {
        self.count = count
        self.size = size
        self.colour = colour
        self.shape = shape
        self.placement = placement
        self.background = background
        self.stripes = stripes
        self.splatter = splatter
    }

    /// The mention of `concept`, nil when absent.
    public func mention(of concept: Concept) -> ConceptMention? {
        concept == .stripes ? stripes : splatter
    }

    /// Whether `concept` is in the image (ground truth for detectors).
    public func has(_ concept: Concept) -> Bool { mention(of: concept) != nil }

    /// The same content without `concept`: its safe counterpart.
    public func without(_ concept: Concept) -> SceneContent {
        var copy = self
        if concept == .stripes { copy.stripes = nil } else { copy.splatter = nil }
        return copy
    }
}

/// One drawn object, in pixel coordinates (x right, y down, the image spans 0...32).
public struct SceneObject: Hashable, Sendable {
    public var centerX: Float
    public var centerY: Float
    /// Half the object's extent: a circle's radius, a diamond's half diagonal.
    public var radius: Float
}

/// One splatter mark: a blot and its droplets, each a disc (x, y, radius) in pixels.
public struct SplatterMark: Hashable, Sendable {
    public var discs: [Disc]

    /// A filled disc.
    public struct Disc: Hashable, Sendable {
        public var x: Float
        public var y: Float
        public var radius: Float
    }
}

/// A full scene: its content plus the geometry drawn from the same key. Geometry never
/// depends on which concepts are present, so `without(_:)` is the exact safe counterpart
/// of the same image (same objects at the same places, only the concept gone).
public struct SceneSpec: Hashable, Sendable {
    public var content: SceneContent
    /// `content.count` objects, all of `content.shape`, `content.colour`, `content.size`.
    public var objects: [SceneObject]
    /// The splatter marks drawn when splatter is present (kept even when absent, so
    /// adding the concept back restores the same marks).
    public var splatterMarks: [SplatterMark]
    /// Vertical offset of the stripe bands, in pixels, relative to each object's centre.
    public var stripePhase: Float

    /// Ground-truth labels for detectors.
    public var labels: SceneLabels {
        SceneLabels(
            stripes: content.has(.stripes), splatter: content.has(.splatter),
            shape: content.shape, colour: content.colour)
    }

    /// The same scene without `concept`.
    public func without(_ concept: Concept) -> SceneSpec {
        var copy = self
        copy.content = content.without(concept)
        return copy
    }
}

/// What a detector is trained to tell: concept presence and the main object.
public struct SceneLabels: Hashable, Sendable {
    public var stripes: Bool
    public var splatter: Bool
    public var shape: Shape
    public var colour: ObjectColour

    /// Presence of `concept`.
    public func has(_ concept: Concept) -> Bool { concept == .stripes ? stripes : splatter }
}
