import Foundation
import Tensor

/// An adapter file and the strength it is applied with (1: as trained).
public struct AdapterFile: Hashable, Sendable {
    public var path: String
    public var scale: Float

    public init(path: String, scale: Float = 1) {
        self.path = path
        self.scale = scale
    }
}

extension LoRAFile {
    /// Attaches several adapter files at once: LoRA files as diffusers'
    /// `set_adapters(names, adapter_weights=scales)` does, each adapted layer applying
    /// W0 + Σᵢ sᵢ Bᵢ Aᵢ, and UNet weights files (`UNetWeightsFile`) as
    /// W_base + Σⱼ sⱼ (Wⱼ − W_base), told apart by their keys (`AdapterKind`). DUO's violence
    /// model is its four sub-concept adapters stacked at weight 1
    /// (docs/reference-settings.md). Detaching the set undoes both.
    /// Text-encoder adapters need `textEncoder`.
    public static func load(
        _ files: [AdapterFile], into unet: UNet2DConditionModel,
        textEncoder: CLIPTextModel? = nil
    ) throws -> LoRASet {
        var (loras, weights): ([AdapterFile], [AdapterFile]) = ([], [])
        for file in files {
            switch try AdapterKind.of(file.path, unet: unet) {
            case .lora: loras.append(file)
            case .unetWeights: weights.append(file)
            }
        }
        let set = try loadLoRAs(loras, into: unet, textEncoder: textEncoder)
        set.files = loras.map(\.path)
        guard !weights.isEmpty else { return set }
        do {
            let edits = try UNetWeightsFile.apply(weights, to: unet)
            let joined = LoRASet(
                adapters: set.adapters, weightEdits: edits, textEncoder: textEncoder)
            joined.files = files.map(\.path)
            return joined
        } catch {
            set.detach(from: unet)
            throw error
        }
    }

    /// Attaches LoRA files. Where files adapt the same layer their adapters are joined along
    /// the rank, A = [A₁; A₂], B = [s₁B₁, s₂B₂], whose product is that sum.
    static func loadLoRAs(
        _ files: [AdapterFile], into unet: UNet2DConditionModel, textEncoder: CLIPTextModel?
    ) throws -> LoRASet {
        guard files.count > 1 else {
            guard let file = files.first else {
                return LoRASet(adapters: [], textEncoder: textEncoder)
            }
            return try loadLoRA(
                file.path, into: unet, textEncoder: textEncoder, scale: file.scale)
        }
        var perLayer: [String: [LoRA]] = [:]
        for file in files {
            let set = try loadLoRA(
                file.path, into: unet, textEncoder: textEncoder, scale: file.scale)
            set.detach(from: unet)
            for (name, adapter) in set.adapters {
                perLayer[name, default: []].append(adapter)
            }
        }
        let modelOrder = LoRASet.adaptableLayers(
            unet: unet, textEncoder: textEncoder, targets: Set(LoRATarget.allCases))
        var adapters: [(String, LoRA)] = []
        for (name, layer) in modelOrder where perLayer[name] != nil {
            let joined = joinedAlongRank(perLayer[name]!)
            switch layer {
            case .linear(let linear): linear.lora = joined
            case .conv(let conv): conv.lora = joined
            }
            adapters.append((name, joined))
        }
        return LoRASet(adapters: adapters, textEncoder: textEncoder)
    }

    /// One adapter equal to the sum of `parts` (same layer): downs stacked along the rank,
    /// ups side by side with each part's scale folded in.
    static func joinedAlongRank(_ parts: [LoRA]) -> LoRA {
        guard parts.count > 1 else { return parts[0] }
        let first = parts[0]
        let rank = parts.reduce(0) { $0 + $1.rank }
        let out = first.up.shape[0]
        let kernel = first.down.rank == 4 ? first.down.shape[2] : nil
        let joined = LoRA(
            inFeatures: first.down.shape[1], outFeatures: out, kernel: kernel, rank: rank,
            alpha: Float(rank), key: RandomKey(seed: 0))
        // down: [r, in(, k, k)] rows one after another.
        let down = parts.flatMap(\.down.scalars)
        // up: [out, r(, 1, 1)]; row o is every part's row o, scaled.
        var up: [Float] = []
        up.reserveCapacity(out * rank)
        for o in 0..<out {
            for part in parts {
                let row = part.up.scalars[(o * part.rank)..<((o + 1) * part.rank)]
                up += row.map { $0 * part.scale }
            }
        }
        joined.down.withUnsafeMutableBufferPointer { _ = $0.initialize(from: down) }
        joined.up.withUnsafeMutableBufferPointer { _ = $0.initialize(from: up) }
        return joined
    }
}
