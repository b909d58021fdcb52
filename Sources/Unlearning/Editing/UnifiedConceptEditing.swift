import Diffusion
import Foundation
import Tensor

/// UCE's erasure (Gandikota et al., "Unified Concept Editing in Diffusion Models", WACV
/// 2024, eq. 7): a closed-form edit of every cross-attention key and value projection, so
/// that the erased concepts' text embeddings project where the guide concepts' do while
/// the preserved ones project as before. Nothing is trained.
///
/// As the authors' erase script computes it (rohitgandikota/unified-concept-editing at
/// 35e91e2, train-scripts/train_erase.py, `edit_model`, lines 172-315), for each attn2
/// to_k and to_v with original weight W (lines 175-194):
///
///     mat1 = λ W + s_e Σᵢ v*ᵢ kᵢᵀ + s_p Σⱼ (W eⱼ) eⱼᵀ
///     mat2 = λ I + s_e Σᵢ kᵢ kᵢᵀ + s_p Σⱼ eⱼ eⱼᵀ
///     W_new = mat1 mat2⁻¹                                   (lines 233-312)
///
/// kᵢ, v*ᵢ: the erase pairs' rows (`UCETokenRows.erasePair`), v*ᵢ from the original W;
/// eⱼ: every position of the empty prompt and of each preserved one. mat2 is the same for
/// every layer (the projections share their input), so it is factored once. The script
/// solves in float32 with `torch.inverse`; this solves in float64 by Cholesky (mat2 is
/// symmetric positive definite for λ > 0), which is the same math with less rounding.
public enum UnifiedConceptEditing {
    /// One edited projection.
    public struct LayerEdit {
        /// The parameter's diffusers key (`...attn2.to_k.weight`).
        public var key: String
        /// The new weight [out, in].
        public var weight: Tensor
        /// ‖W_new − W‖ / ‖W‖.
        public var relativeChange: Double
        /// ‖W kᵢ − v*ᵢ‖ / ‖v*ᵢ‖ over every erase row, before and after the edit.
        public var eraseErrorBefore: Double
        public var eraseErrorAfter: Double
        /// ‖W_new eⱼ − W eⱼ‖ / ‖W eⱼ‖ over every preserved row.
        public var preserveDrift: Double
    }

    /// The edit and the token positions it used.
    public struct Result {
        public var layers: [LayerEdit]
        /// Per erase pair: where its rows start in the erased prompt and in the guide, and
        /// how many positions it uses.
        public var positions: [(erase: Int, guide: Int, count: Int)]
    }

    /// The edited weights of `model`'s cross-attention projections; the model is unchanged.
    public static func edit(_ model: StableDiffusion, _ settings: UCESettings) throws -> Result {
        if let problem = settings.problem { throw UCEError(problem) }
        let pairs = zip(settings.erase, settings.guide).map {
            UCETokenRows.erasePair($0, guide: $1, model: model)
        }
        let preserved = ([""] + settings.preserve).map { UCETokenRows.preserved($0, model: model) }
        let projections = crossAttentionProjections(model.unet)
        guard let width = projections.first?.1.inFeatures else {
            throw UCEError("the UNet has no cross-attention to edit")
        }
        let factor = try rightHandFactor(width: width, pairs, preserved, settings)
        let layers = projections.map { key, layer in
            editLayer(key, layer, pairs, preserved, factor: factor, settings)
        }
        return Result(
            layers: layers,
            positions: pairs.map { ($0.eraseStart, $0.guideStart, $0.keys.rows) })
    }

    /// attn2's to_k and to_v of every transformer block, in model order: the layers the
    /// script collects from the down, mid and up blocks' cross-attention (lines 175-194).
    static func crossAttentionProjections(_ unet: UNet2DConditionModel) -> [(String, Linear)] {
        unet.adaptableLayers([.crossAttention]).compactMap { name, layer in
            guard case .linear(let linear) = layer,
                name.hasSuffix(".to_k") || name.hasSuffix(".to_v")
            else { return nil }
            return (name + ".weight", linear)
        }
    }

    /// The Cholesky factor of mat2 = λ I + s_e Σ k kᵀ + s_p Σ e eᵀ.
    static func rightHandFactor(
        width: Int, _ pairs: [UCETokenRows.ErasePair], _ preserved: [Matrix64],
        _ settings: UCESettings
    ) throws -> Matrix64 {
        var mat2 = Matrix64.identity(width, scale: settings.lambda)
        for pair in pairs {
            mat2 = mat2.adding(
                .product(pair.keys, pair.keys, transposeA: true), scaled: settings.eraseScale)
        }
        for rows in preserved {
            mat2 = mat2.adding(
                .product(rows, rows, transposeA: true), scaled: settings.resolvedPreserveScale)
        }
        do { return try mat2.cholesky() } catch {
            throw UCEError(
                "the system is not positive definite (lambda \(settings.lambda), erase scale \(settings.eraseScale), preserve scale \(settings.resolvedPreserveScale)): "
                    + "give a lambda above 0, or scales small enough for float64")
        }
    }

    /// W_new = mat1 mat2⁻¹ for one projection, and how far it moved.
    static func editLayer(
        _ key: String, _ layer: Linear, _ pairs: [UCETokenRows.ErasePair],
        _ preserved: [Matrix64], factor: Matrix64, _ settings: UCESettings
    ) -> LayerEdit {
        let w = Matrix64(layer.weight)
        let bias = layer.bias.map { $0.scalars.map(Double.init) }
        let targets = pairs.map { values($0, w, bias, settings.technique) }
        let kept = preserved.map { project($0, w, bias) }
        var mat1 = w.scaled(settings.lambda)
        for (pair, target) in zip(pairs, targets) {
            mat1 = mat1.adding(
                .product(target, pair.keys, transposeA: true), scaled: settings.eraseScale)
        }
        for (rows, projected) in zip(preserved, kept) {
            mat1 = mat1.adding(
                .product(projected, rows, transposeA: true),
                scaled: settings.resolvedPreserveScale)
        }
        let edited = mat1.solvingRight(cholesky: factor)
        func error(_ weight: Matrix64, _ rows: [Matrix64], _ wanted: [Matrix64]) -> Double {
            let gaps = zip(rows, wanted).map { project($0, weight, bias).adding($1, scaled: -1) }
            return norm(gaps) / norm(wanted)
        }
        return LayerEdit(
            key: key, weight: edited.tensor,
            relativeChange: edited.adding(w, scaled: -1).frobeniusNorm / w.frobeniusNorm,
            eraseErrorBefore: error(w, pairs.map(\.keys), targets),
            eraseErrorAfter: error(edited, pairs.map(\.keys), targets),
            preserveDrift: error(edited, preserved, kept))
    }

    /// v*: the guide rows' projection by the original W ('replace'), or that less its
    /// component along the erased rows' own projection u, normalized over all positions at
    /// once ('tensor', lines 267-276).
    static func values(
        _ pair: UCETokenRows.ErasePair, _ w: Matrix64, _ bias: [Double]?,
        _ technique: UCESettings.Technique
    ) -> Matrix64 {
        let projected = project(pair.guides, w, bias)
        guard technique == .tensor else { return projected }
        let own = project(pair.keys, w, bias)
        let u = own.scaled(1 / own.frobeniusNorm)
        let along = zip(u.scalars, projected.scalars).reduce(0) { $0 + $1.0 * $1.1 }
        return projected.adding(u, scaled: -along)
    }

    /// The layer's output for each row: rows Wᵀ (+ b), [T, out].
    static func project(_ rows: Matrix64, _ w: Matrix64, _ bias: [Double]?) -> Matrix64 {
        var out = Matrix64.product(rows, w, transposeB: true)
        if let bias {
            for i in out.scalars.indices { out.scalars[i] += bias[i % out.columns] }
        }
        return out
    }

    /// sqrt of the summed squares of several matrices.
    static func norm(_ parts: [Matrix64]) -> Double {
        parts.reduce(0) { $0 + $1.frobeniusNorm * $1.frobeniusNorm }.squareRoot()
    }
}

/// A UCE edit that cannot run, in one line.
public struct UCEError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = "UCE: " + description }
}
