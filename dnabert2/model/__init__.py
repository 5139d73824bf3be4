"""The DNABERT-2 model: configuration and presets, the ALiBi encoder, its heads, and model folders."""

from .checkpoint import (SAVED_FILES, check_model_folder, check_tokenizer, classifier_head, is_classifier, load_model,
                         save_model)
from .config import PRESETS, ModelConfig, preset
from .heads import (HEADS, DNABertForBaseClassification, DNABertForEmbedding, DNABertForMaskedLM,
                    DNABertForSequenceClassification, DNABertModel, ModelOutput, build_model)

__all__ = ["PRESETS", "SAVED_FILES", "HEADS", "ModelConfig", "ModelOutput", "preset", "build_model", "load_model",
           "save_model", "check_model_folder", "check_tokenizer", "classifier_head", "is_classifier", "DNABertModel", "DNABertForMaskedLM",
           "DNABertForSequenceClassification", "DNABertForBaseClassification", "DNABertForEmbedding"]
