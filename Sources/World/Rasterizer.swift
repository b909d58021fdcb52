/// Draws scenes analytically: each pixel is the average of 4x4 point samples, each sample
/// taking the colour of the last primitive that covers it (painter's order: background,
/// objects, splatter on top).
///
/// Samples first get a material index (a byte), and colours only at the end: a scene has
/// four colours at most, so the downsample is a table look-up, and a 32x32 image costs
/// tens of microseconds.
enum Rasterizer {
    static let supersampling = 4
    static let side = World.size * supersampling

    /// Splatter is darker than the red of red objects, so the two stay apart.
    static let splatterRGB: (UInt8, UInt8, UInt8) = (150, 5, 15)

    /// Materials a sample can take; indices into the scene's palette.
    enum Material: UInt8 {
        case background = 0, object, stripe, splatter
    }

    /// Stripes: bands of period 5 pixels, 3 of object colour then 2 of stripe colour; the
    /// colour band is centred on the object's centre (shifted by the scene's phase, at
    /// most half a pixel) so that the centre pixel always shows the object's colour.
    static let stripePeriod: Float = 5
    static let stripeWidth: Float = 2

    /// The image of `scene`, [3, 32, 32] channel-major, in [-1, 1].
    static func render(_ scene: SceneSpec) -> [Float] {
        var image = [Float](repeating: 0, count: World.channels * World.size * World.size)
        image.withUnsafeMutableBufferPointer { render(scene, into: $0) }
        return image
    }

    /// Writes the image of `scene` into `out` (3 * 32 * 32 floats), so batches can be
    /// filled in place.
    static func render(_ scene: SceneSpec, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == World.channels * World.size * World.size, "wrong image size")
        var materials = [UInt8](repeating: Material.background.rawValue, count: side * side)
        materials.withUnsafeMutableBufferPointer { samples in
            let striped = scene.content.has(.stripes)
            for object in scene.objects {
                paint(object, shape: scene.content.shape, into: samples) { _, dy in
                    striped && isStripe(dy - scene.stripePhase) ? .stripe : .object
                }
            }
            if scene.content.has(.splatter) {
                for disc in scene.splatterMarks.flatMap(\.discs) { paint(disc, into: samples) }
            }
            downsample(samples, palette: palette(scene.content), into: out)
        }
    }

    /// Whether a point `dy` pixels below the band centre lies on a stripe.
    static func isStripe(_ dy: Float) -> Bool {
        let band = stripePeriod - stripeWidth
        var t = (dy + band / 2).truncatingRemainder(dividingBy: stripePeriod)
        if t < 0 { t += stripePeriod }
        return t >= band
    }

    /// Sets every sample inside `object` to the material `material(dx, dy)` gives for the
    /// sample's offset from the object's centre.
    private static func paint(
        _ object: SceneObject, shape: Shape, into samples: UnsafeMutableBufferPointer<UInt8>,
        material: (Float, Float) -> Material
    ) {
        forEachSample(
            centerX: object.centerX, centerY: object.centerY, reach: object.radius
        ) { dx, dy, index in
            if ShapeGeometry.contains(shape, dx: dx, dy: dy, radius: object.radius) {
                samples[index] = material(dx, dy).rawValue
            }
        }
    }

    private static func paint(
        _ disc: SplatterMark.Disc, into samples: UnsafeMutableBufferPointer<UInt8>
    ) {
        let r2 = disc.radius * disc.radius
        forEachSample(centerX: disc.x, centerY: disc.y, reach: disc.radius) { dx, dy, index in
            if dx * dx + dy * dy <= r2 { samples[index] = Material.splatter.rawValue }
        }
    }

    /// Visits the samples within `reach` pixels (a square box) of a centre, clipped to the
    /// image, giving each sample's offset from the centre and its index.
    private static func forEachSample(
        centerX: Float, centerY: Float, reach: Float, _ body: (Float, Float, Int) -> Void
    ) {
        let scale = Float(supersampling)
        func range(_ center: Float) -> Range<Int> {
            let low = max(0, Int(((center - reach) * scale).rounded(.down)))
            let high = min(side, Int(((center + reach) * scale).rounded(.up)) + 1)
            return low..<max(low, high)
        }
        for sy in range(centerY) {
            let dy = (Float(sy) + 0.5) / scale - centerY
            for sx in range(centerX) {
                body((Float(sx) + 0.5) / scale - centerX, dy, sy * side + sx)
            }
        }
    }

    /// The colours of the four materials, mapped to [-1, 1], channel after channel.
    private static func palette(_ content: SceneContent) -> [Float] {
        let colours = [
            content.background.rgb, content.colour.rgb, content.background.stripeRGB,
            splatterRGB,
        ]
        return colours.flatMap { rgb in [rgb.0, rgb.1, rgb.2].map { Float($0) / 127.5 - 1 } }
    }

    /// Averages each pixel's 4x4 samples' colours into the channel-major output.
    private static func downsample(
        _ samples: UnsafeMutableBufferPointer<UInt8>, palette: [Float],
        into out: UnsafeMutableBufferPointer<Float>
    ) {
        let plane = World.size * World.size
        let weight = 1 / Float(supersampling * supersampling)
        for y in 0..<World.size {
            for x in 0..<World.size {
                var (r, g, b): (Float, Float, Float) = (0, 0, 0)
                for sy in (y * supersampling)..<((y + 1) * supersampling) {
                    for sx in (x * supersampling)..<((x + 1) * supersampling) {
                        let m = Int(samples[sy * side + sx]) * 3
                        r += palette[m]
                        g += palette[m + 1]
                        b += palette[m + 2]
                    }
                }
                let pixel = y * World.size + x
                out[pixel] = r * weight
                out[plane + pixel] = g * weight
                out[2 * plane + pixel] = b * weight
            }
        }
    }
}

/// Point-in-shape tests, relative to an object's centre, scaled by its radius.
enum ShapeGeometry {
    /// A square's half side, as a fraction of the radius (its area then nears the circle's).
    static let squareHalfSide: Float = 0.85
    /// Half the width of a cross's arms, and their reach, as fractions of the radius: arms
    /// short of the full radius keep a row of small crosses from joining into one bar.
    static let crossHalfWidth: Float = 0.36
    static let crossReach: Float = 0.9
    /// A triangle's base sits this far below the centre (apex at -radius), which puts its
    /// centroid near the object's centre.
    static let triangleBase: Float = 0.75

    /// Whether the point (dx, dy) from the centre lies inside `shape` of `radius`.
    static func contains(_ shape: Shape, dx: Float, dy: Float, radius r: Float) -> Bool {
        let (ax, ay) = (abs(dx), abs(dy))
        switch shape {
        case .circle: return dx * dx + dy * dy <= r * r
        case .square: return max(ax, ay) <= squareHalfSide * r
        case .diamond: return ax + ay <= r
        case .triangle:
            return dy <= triangleBase * r && ax * (1 + triangleBase) <= dy + r
        case .cross:
            let (w, reach) = (crossHalfWidth * r, crossReach * r)
            return (ax <= w && ay <= reach) || (ay <= w && ax <= reach)
        }
    }
}
