"""The v4 API definition: its two spellings, validation, and what this gateway can run."""
from .checks import blocking_parts, import_notes, validate, warnings
from .forms import DefinitionError, export_envelope, gateway_enum, read_document, to_gateway_form, to_management_form

__all__ = ["DefinitionError", "blocking_parts", "export_envelope", "gateway_enum", "import_notes", "read_document",
           "to_gateway_form", "to_management_form", "validate", "warnings"]
