import Foundation

/// Where objects and splatter marks go, in pixels (the image spans 0...32 both ways).
///
/// Sizes and spacing are chosen so that shapes never overlap and stay large enough to be
/// told apart: a small object is 8-10 pixels across, a large one 17-20.
enum Layout {
    static let smallRadius: ClosedRange<Float> = 4.1...4.8
    static let largeRadius: ClosedRange<Float> = 8.5...10.0
    /// Distance from the image centre to the middle of a side's line of small objects.
    static let sideOffset: Float = 10
    /// How far a single large object leans towards its side.
    static let largeOffset: Float = 5
    /// Offsets along the line for 1, 2 and 3 small objects (a pitch of about 11 pixels).
    static let lineOffsets: [[Float]] = [[0], [-5.6, 5.6], [-10.6, 0, 10.6]]

    /// The objects of `content`, with jitter from `draws`. Always reads the same number of
    /// draws, so later streams and fields do not shift with the count.
    static func objects(for content: SceneContent, draws: inout RandomDraws) -> [SceneObject] {
        let large = content.size == .large
        let range = large ? largeRadius : smallRadius
        let radius = draws.next(range.lowerBound, range.upperBound)
        // A single object may wander a little; a line of objects barely, to stay apart.
        let wander: Float = content.count == 1 ? 1.0 : 0.4
        let jitter = (0..<6).map { _ in draws.next(-wander, wander) }
        let (baseX, baseY, alongX) = anchor(content.placement, large: large)
        return lineOffsets[content.count - 1].enumerated().map { i, offset in
            SceneObject(
                centerX: baseX + (alongX ? offset : 0) + jitter[2 * i],
                centerY: baseY + (alongX ? 0 : offset) + jitter[2 * i + 1],
                radius: radius)
        }
    }

    /// The centre of the placement's spot, and whether a line of objects there runs along x.
    private static func anchor(_ placement: Placement, large: Bool) -> (Float, Float, Bool) {
        let side = large ? largeOffset : sideOffset
        let middle: Float = 16
        switch placement {
        case .left: return (middle - side, middle, false)
        case .right: return (middle + side, middle, false)
        case .top: return (middle, middle - side, true)
        case .bottom: return (middle, middle + side, true)
        case .center: return (middle, middle, true)
        }
    }

    /// Three to five marks, each a blot with two to four droplets flung around it.
    static func splatterMarks(draws: inout RandomDraws) -> [SplatterMark] {
        let markCount = 3 + draws.index(3)
        let marks = (0..<5).map { _ in splatterMark(draws: &draws) }
        return Array(marks.prefix(markCount))
    }

    private static func splatterMark(draws: inout RandomDraws) -> SplatterMark {
        let x = draws.next(3, 29)
        let y = draws.next(3, 29)
        let blot = draws.next(1.6, 2.6)
        let dropletCount = 2 + draws.index(3)
        var discs = [SplatterMark.Disc(x: x, y: y, radius: blot)]
        for i in 0..<4 {
            let angle = draws.next(0, 2 * Float.pi)
            let distance = blot + draws.next(1.0, 3.5)
            let radius = draws.next(0.5, 1.1)
            guard i < dropletCount else { continue }
            discs.append(
                SplatterMark.Disc(
                    x: x + distance * cos(angle), y: y + distance * sin(angle), radius: radius))
        }
        return SplatterMark(discs: discs)
    }
}
