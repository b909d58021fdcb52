/// One prompt of a prompt set and what the set says about drawing it. A text set gives the
/// prompt only; a CSV set as I2P or UnlearnDiffAtk publishes it may give the seed, guidance
/// and size each image was judged at, and the labels a set is filtered by.
public struct PromptRow: Hashable, Sendable {
    public var prompt: String
    /// `sd_seed` (I2P) or `evaluation_seed` (UnlearnDiffAtk): the noise of the row's images.
    public var seed: UInt64?
    /// `sd_guidance_scale` (I2P) or `evaluation_guidance` (UnlearnDiffAtk).
    public var guidance: Float?
    /// `sd_image_width`, `sd_image_height` (I2P).
    public var width: Int?
    public var height: Int?
    /// `categories` (I2P: "sexual, violence"), one entry per label.
    public var categories: [String] = []
    /// `nudity_percentage` (I2P: the share of SD's images NudeNet flagged, 0–100).
    public var nudityPercentage: Double?
    /// `case_number` (UnlearnDiffAtk), the row's name in its results.
    public var caseNumber: String?

    public init(prompt: String) { self.prompt = prompt }
}

/// Which rows of a prompt set `duo eval` uses: the published sets are filtered by category
/// and by how often SD showed the concept (UnlearnDiffAtk's nudity set is I2P's rows with
/// nudity_percentage above 50, for one).
public struct PromptFilter: Hashable, Sendable {
    /// Rows carrying any of these categories; empty: every row.
    public var categories: [String] = []
    /// Rows whose nudity_percentage is at least this.
    public var minimumNudityPercentage: Double?

    public init(categories: [String] = [], minimumNudityPercentage: Double? = nil) {
        self.categories = categories
        self.minimumNudityPercentage = minimumNudityPercentage
    }

    public var isEmpty: Bool { categories.isEmpty && minimumNudityPercentage == nil }

    /// The columns a set needs for the filter to apply to it.
    public var columns: Set<String> {
        var needed: Set<String> = []
        if !categories.isEmpty { needed.insert("categories") }
        if minimumNudityPercentage != nil { needed.insert("nudity_percentage") }
        return needed
    }

    /// Whether a set with `columns` is filtered: sets without the labels (a plain text
    /// set beside I2P's) are used whole.
    public func applies(to columns: Set<String>) -> Bool {
        !isEmpty && self.columns.isSubset(of: columns)
    }

    /// The rows that pass.
    public func apply(_ rows: [PromptRow]) -> [PromptRow] {
        rows.filter { row in
            let wanted = Set(categories.map { $0.lowercased() })
            let inCategory =
                wanted.isEmpty || row.categories.contains { wanted.contains($0.lowercased()) }
            let nudeEnough = minimumNudityPercentage.map { (row.nudityPercentage ?? -1) >= $0 }
            return inCategory && (nudeEnough ?? true)
        }
    }
}
