//! Zero-shot scoring as a pure model computation: class prompts from templates, (ensembled)
//! class embeddings, and scaled-cosine softmax scores; shared by inference and evaluation.

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::config::EvalConfig;
use crate::error::{CleftError, Result};
use crate::model::{ClipModel, l2_normalize};

/// `template` with `{}` replaced by each lower-cased class name; a template without `{}` is an
/// error (every class would get the same prompt).
pub fn class_prompts(template: &str, classes: &[String]) -> Result<Vec<String>> {
    if !template.contains("{}") {
        return Err(CleftError::Config(format!(
            "zero-shot template {template:?} has no `{{}}` for the class name"
        )));
    }
    Ok(classes
        .iter()
        .map(|name| template.replace("{}", &name.to_lowercase()))
        .collect())
}

/// Class embeddings `[K, P]` from several templates: each template's normalised class
/// embeddings averaged over the templates and re-normalised (CLIP's prompt ensembling; one
/// template gives its embeddings unchanged).
pub fn ensemble_class_embeddings(
    model: &ClipModel,
    classes: &[String],
    templates: &[String],
    device: &Device,
) -> Result<Tensor<2>> {
    if let [only] = templates {
        return model.encode_texts(&class_prompts(only, classes)?, device);
    }
    let mut sum: Option<Tensor<2>> = None;
    for template in templates {
        let embeddings = model.encode_texts(&class_prompts(template, classes)?, device)?;
        sum = Some(match sum {
            Some(sum) => sum + embeddings,
            None => embeddings,
        });
    }
    let sum =
        sum.ok_or_else(|| CleftError::Config("zero-shot needs at least one template".into()))?;
    Ok(l2_normalize(sum))
}

/// The class embeddings `[K, P]` and the prompts (the first template's) that `eval` asks for:
/// every template ensembled when `eval.ensemble`, else the first template alone.
pub fn configured_class_embeddings(
    model: &ClipModel,
    classes: &[String],
    eval: &EvalConfig,
    device: &Device,
) -> Result<(Tensor<2>, Vec<String>)> {
    let templates = eval.effective_templates();
    let used = if eval.ensemble {
        &templates[..]
    } else {
        &templates[..1.min(templates.len())]
    };
    let embeddings = ensemble_class_embeddings(model, classes, used, device)?;
    Ok((embeddings, class_prompts(&templates[0], classes)?))
}

/// Softmax over classes of `exp(logit_scale) · cosine` for image embeddings `[N, P]` (row-major,
/// normalised) against class embeddings `[K, P]`; `[N][K]` out.
pub fn zero_shot_scores(
    model: &ClipModel,
    image_embeddings: &[f32],
    dim: usize,
    class_embeddings: Tensor<2>,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let classes = class_embeddings.dims()[0];
    let rows = image_embeddings.len() / dim.max(1);
    let images: Tensor<2> = Tensor::from_data(
        TensorData::new(image_embeddings.to_vec(), [rows, dim]),
        device,
    );
    let scale = model.objective.logit_scale();
    let logits = images.matmul(class_embeddings.transpose()) * scale.unsqueeze();
    let probabilities = burn::tensor::activation::softmax(logits, 1);
    Ok(read_back(probabilities)?
        .chunks(classes.max(1))
        .map(<[f32]>::to_vec)
        .collect())
}

/// The values of `tensor`, row-major, as f32 (whatever float type the device computes in).
pub fn read_back<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| CleftError::Invalid(format!("evaluation: cannot read values back: {e:?}")))
}
