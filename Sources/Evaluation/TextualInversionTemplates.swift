import Unlearning

/// The captions textual inversion draws one of per image (`random.choice`), with `{}` where
/// the placeholder goes: diffusers' `examples/textual_inversion/textual_inversion.py` (at
/// 58eb52c) `imagenet_templates_small` (l.454–482) and `imagenet_style_templates_small`
/// (l.484–504); Pham et al.'s `person_templates_small` (NYU-DICE-Lab/circumventing-concept-erasure
/// at bb7034b, `esd/concept_inversion.py` l.471–474). Pham et al.'s scripts carry the first
/// two unchanged (l.419–469).
enum TextualInversionTemplates {
    /// The templates of `captions`; nil for `.prompts` (each image's own prompt).
    static func templates(_ captions: TextualInversionCaptions) -> [String]? {
        switch captions {
        case .object: return object
        case .style: return style
        case .person: return person
        case .prompts: return nil
        }
    }

    static let object = [
        "a photo of a {}",
        "a rendering of a {}",
        "a cropped photo of the {}",
        "the photo of a {}",
        "a photo of a clean {}",
        "a photo of a dirty {}",
        "a dark photo of the {}",
        "a photo of my {}",
        "a photo of the cool {}",
        "a close-up photo of a {}",
        "a bright photo of the {}",
        "a cropped photo of a {}",
        "a photo of the {}",
        "a good photo of the {}",
        "a photo of one {}",
        "a close-up photo of the {}",
        "a rendition of the {}",
        "a photo of the clean {}",
        "a rendition of a {}",
        "a photo of a nice {}",
        "a good photo of a {}",
        "a photo of the nice {}",
        "a photo of the small {}",
        "a photo of the weird {}",
        "a photo of the large {}",
        "a photo of a cool {}",
        "a photo of a small {}",
    ]

    static let style = [
        "a painting in the style of {}",
        "a rendering in the style of {}",
        "a cropped painting in the style of {}",
        "the painting in the style of {}",
        "a clean painting in the style of {}",
        "a dirty painting in the style of {}",
        "a dark painting in the style of {}",
        "a picture in the style of {}",
        "a cool painting in the style of {}",
        "a close-up painting in the style of {}",
        "a bright painting in the style of {}",
        "a cropped painting in the style of {}",
        "a good painting in the style of {}",
        "a close-up painting in the style of {}",
        "a rendition in the style of {}",
        "a nice painting in the style of {}",
        "a small painting in the style of {}",
        "a weird painting in the style of {}",
        "a large painting in the style of {}",
    ]

    static let person = ["a photo portrait of {}", "a DSLR portrait of {}"]
}
