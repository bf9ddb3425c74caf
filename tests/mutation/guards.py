"""Guard deletion: every guard of the readers of other people's files, neutralised one at a time, must make a test of
the hostile-input battery (``tests/hostile``) fail.

Usage::

    python tests/mutation/guards.py               # every guard
    python tests/mutation/guards.py yaml_alias    # some of them, by name
    python tests/mutation/guards.py --list        # name, file:line, the guard and the test that must catch it

The machinery is ``run_mutations.py``'s (a copy of the tree per run, one snippet replaced, the named tests run with
``-x``). A guard is neutralised the way a mutation tester would: its condition made ``False``, its ``except`` made
to catch nothing, its bound or check removed. Each runs the one test (file or function) named beside it. A few
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_mutations import ROOT, Mutant, run  # noqa: E402 (the sibling script, also run as a script)

H = "tests/hostile/"
LIST, YAML, JSON, WEIGHTS = (H + "test_list_csv.py", H + "test_yaml_config.py", H + "test_config_json.py",
                             H + "test_safetensors.py")  # fmt: skip
RUNS, MAT, IMAGES = H + "test_run_folder.py", H + "test_rand_perm_mat.py", H + "test_images.py"
NEVER = "except ZeroDivisionError as err:"  # an except clause that catches nothing a reader raises


def _guard(name: str, path: str, old: str, new: str, test: str, what: str = "") -> Mutant:
    return Mutant(name, what or f"{path}: {old.strip()[:70]}", path, old, new, (test,))


_LIST_PY, _CONFIG_PY, _PRE_PY = "wrim/data/list_dataset.py", "wrim/engine/config.py", "wrim/models/pretrained.py"
_WEIGHTS_PY, _CKPT_PY = "wrim/models/weights.py", "wrim/engine/checkpoint.py"
_SYSU_PY, _LOADER_PY = "wrim/data/sysu.py", "wrim/data/loader.py"
_PATH_TEST = LIST + "::test_path_attacks_are_refused_naming_file_and_line"

GUARDS: tuple[Mutant, ...] = (
    # ---- the list CSV
    _guard(
        "list_control_chars",
        _LIST_PY,
        'if any(unicodedata.category(char) == "Cc" for char in path):',
        "if False:",
        _PATH_TEST,
    ),
    _guard("list_backslash", _LIST_PY, 'if "\\\\" in path:', "if False:", _PATH_TEST),
    _guard(
        "list_absolute",
        _LIST_PY,
        "if PurePosixPath(path).is_absolute() or PureWindowsPath",
        "if PureWindowsPath",
        _PATH_TEST,
    ),
    _guard("list_drive", _LIST_PY, "or PureWindowsPath(path).drive or", "or", _PATH_TEST),
    _guard("list_dotdot", _LIST_PY, ' or ".." in PurePosixPath(path).parts:', ":", _PATH_TEST),
    _guard("list_names_a_file", _LIST_PY, "if not PurePosixPath(path).parts:", "if False:", _PATH_TEST),
    _guard(
        "list_physical_lines",
        _LIST_PY,
        'csv.reader(io.StringIO(text, newline=""))',
        "csv.reader(text.splitlines())",
        _PATH_TEST,
    ),
    _guard(
        "list_csv_error",
        _LIST_PY,
        "except csv.Error as err:",
        NEVER,
        LIST + "::test_malformed_files_name_file_and_line",
    ),
    _guard(
        "list_duplicate_columns",
        _LIST_PY,
        "    if twice:\n",
        "    if False:\n",
        LIST + "::test_malformed_files_name_file_and_line",
    ),
    # ---- YAML configs and overrides
    _guard(
        "yaml_alias",
        _CONFIG_PY,
        "if isinstance(event, yaml.AliasEvent):",
        "if False:",
        YAML + "::test_attacks_are_refused_naming_the_file",
    ),
    _guard(
        "yaml_depth",
        _CONFIG_PY,
        "if self.depth >= MAX_DEPTH:",
        "if False:",
        YAML + "::test_attacks_are_refused_naming_the_file",
    ),
    _guard(
        "yaml_key_names",
        _CONFIG_PY,
        "if not isinstance(key, str):",
        "if False:",
        YAML + "::test_attacks_are_refused_naming_the_file",
    ),
    _guard(
        "yaml_value_errors",
        _CONFIG_PY,
        "except (yaml.YAMLError, ValueError) as err:  # ValueError: not UTF-8",
        "except yaml.YAMLError as err:  # ValueError: not UTF-8",
        YAML + "::test_attacks_are_refused_naming_the_file",
    ),
    _guard(
        "override_loader",
        _CONFIG_PY,
        "return yaml.load(raw, Loader=_UniqueKeyLoader)",
        "return yaml.safe_load(raw)",
        YAML + "::test_override_attacks_are_one_line_naming_the_key",
    ),
    _guard(
        "int_finite",
        _CONFIG_PY,
        "not isinstance(value, bool) and math.isfinite(value)",
        "not isinstance(value, bool)",
        YAML + "::test_attacks_are_refused_naming_the_file",
    ),
    _guard(
        "int_range", _CONFIG_PY, " or abs(value) >= 2**63:", ":", YAML + "::test_attacks_are_refused_naming_the_file"
    ),
    _guard(
        "base_type",
        _CONFIG_PY,
        "    if not isinstance(base, str):",
        "    if False:",
        YAML + "::test_attacks_are_refused_naming_the_file",
    ),
    _guard(
        "config_names_file",
        _CONFIG_PY,
        'raise ValueError(f"{path}: {err}") from None',
        "raise",
        YAML + "::test_attacks_are_refused_naming_the_file",
    ),
    # ---- config.json of a model folder
    _guard(
        "json_recursion",
        _PRE_PY,
        "except (ValueError, RecursionError) as err:  # UnicodeDecodeError",
        "except ValueError as err:  # UnicodeDecodeError",
        JSON + "::test_damaged_json_is_refused_naming_config_json",
    ),
    _guard(
        "json_size",
        _PRE_PY,
        "if path.stat().st_size > MAX_CONFIG_BYTES:",
        "if False:",
        JSON + "::test_damaged_json_is_refused_naming_config_json",
    ),
    _guard(
        "version_length",
        _PRE_PY,
        " or len(saved) > 64 or ",
        " or ",
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    _guard(
        "unknown_keys",
        _PRE_PY,
        '    if unknown:\n        raise ValueError(\n            f"{str(path)!r} has unknown',
        '    if False:\n        raise ValueError(\n            f"{str(path)!r} has unknown',
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    _guard(
        "registered_architecture",
        _PRE_PY,
        "if not is_model(architecture):",
        "if False:",
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    _guard(
        "modalities",
        _PRE_PY,
        'if modalities != {"visible": VISIBLE, "infrared": INFRARED}:',
        "if False:",
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    _guard(
        "weights_from_elsewhere",
        _PRE_PY,
        "    if refused:\n",
        "    if False:\n",
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    _guard(
        "timm_backbone_name",
        _PRE_PY,
        "if not isinstance(backbone, str) or not timm.is_model(backbone):",
        "if False:",
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    _guard(
        "max_int",
        _PRE_PY,
        "if abs(value) > MAX_INT:",
        "if False:",
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    _guard(
        "number_paths_escaped",
        _PRE_PY,
        'f"{where}.{key}" if key.isidentifier() else f"{where}[{key!r}]"',
        'f"{where}.{key}"',
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    _guard(
        "max_side",
        _PRE_PY,
        "if any(isinstance(side, int) and side > MAX_SIDE for side in sides):",
        "if False:",
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    _guard(
        "build_errors_name_file",
        _PRE_PY,
        "except (TypeError, ValueError) as err:  # a wrong type or value",
        "except TypeError as err:  # a wrong type or value",
        JSON + "::test_attacks_are_refused_naming_config_json",
    ),
    # ---- model.safetensors
    _guard(
        "header_wrapper",  # the one reader of the header (wrim.models.weights.open_weights) serves both loaders
        _WEIGHTS_PY,
        "except Exception as err:  # SafetensorError (a damaged",
        NEVER + "  # (",
        WEIGHTS + "::test_a_damaged_model_safetensors_in_a_folder_is_refused_in_one_line",
    ),
    _guard(
        "shapes_before_building",
        _PRE_PY,
        "                _check_weights(skeleton, file)\n",
        "                pass\n",
        WEIGHTS + "::test_weights_of_another_shape_than_config_json_says_are_refused_before_building",
    ),
    _guard(
        "safetensors_wrapper",
        _WEIGHTS_PY,
        "except Exception as err:  # SafetensorError (a damaged",
        NEVER + "  # (",
        WEIGHTS + "::test_damaged_files_are_refused_in_one_line_without_allocating",
    ),
    _guard(
        "weight_shapes",
        _WEIGHTS_PY,
        "    if differences.shapes:\n",
        "    if False:\n",
        WEIGHTS + "::test_weights_that_disagree_with_the_model_are_refused_and_not_loaded",
    ),
    _guard(
        "weight_kinds",
        _WEIGHTS_PY,
        "    if kinds:\n",
        "    if False:\n",
        WEIGHTS + "::test_weights_that_disagree_with_the_model_are_refused_and_not_loaded",
    ),
    _guard(
        "weight_keys",
        _WEIGHTS_PY,
        "if strict and (missing or unexpected):",
        "if False:",
        WEIGHTS + "::test_weights_that_disagree_with_the_model_are_refused_and_not_loaded",
    ),
    # ---- run folders
    _guard(
        "pointer_inside_run",
        _CKPT_PY,
        "if folder != SETS or not _plain_name(name):",
        "if False:",
        RUNS + "::test_pointers_out_of_the_run_are_refused",
    ),
    _guard(
        "pointer_separators",
        _CKPT_PY,
        ' and not any(c in name for c in "/\\\\:")',
        "",
        RUNS + "::test_pointers_out_of_the_run_are_refused",
    ),
    _guard(
        "pointer_printable",
        _CKPT_PY,
        " and name.isprintable()",
        "",
        RUNS + "::test_pointers_out_of_the_run_are_refused",
    ),
    _guard(
        "pointer_recursion",
        _CKPT_PY,
        "except (OSError, ValueError, RecursionError) as err:",
        "except (OSError, ValueError) as err:",
        RUNS + "::test_damaged_pointers_are_one_line",
    ),
    _guard(
        "manifest_entries",
        _CKPT_PY,
        "    if not (\n        isinstance(files, dict)",
        "    if False and (\n        isinstance(files, dict)",
        RUNS + "::test_partial_and_disagreeing_sets_are_never_loaded",
    ),
    _guard(
        "manifest_recursion",
        _CKPT_PY,
        "except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:",
        "except (OSError, ValueError, KeyError, TypeError) as err:",
        RUNS + "::test_partial_and_disagreeing_sets_are_never_loaded",
    ),
    _guard(
        "manifest_digests",
        _CKPT_PY,
        'if size != meta["bytes"] or file_sha256(path) != meta["sha256"]:',
        "if False:",
        RUNS + "::test_partial_and_disagreeing_sets_are_never_loaded",
    ),
    _guard(
        "state_weights_only",
        _CKPT_PY,
        'map_location="cpu", weights_only=True)',
        'map_location="cpu", weights_only=False)',
        RUNS + "::test_state_files_run_no_code_and_must_be_a_training_state",
    ),
    _guard(
        "state_error_one_line",
        _CKPT_PY,
        '        reason = " ".join(str(err).split())\n        raise CheckpointError(',
        "        reason = str(err)\n        raise CheckpointError(",
        RUNS + "::test_state_files_run_no_code_and_must_be_a_training_state",
    ),
    _guard(
        "state_is_a_training_state",
        _CKPT_PY,
        'if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):',
        "if False:",
        RUNS + "::test_state_files_run_no_code_and_must_be_a_training_state",
    ),
    # ---- rand_perm_cam.mat
    _guard(
        "mat_reader_errors",
        _SYSU_PY,
        "except Exception as err:  # MatReadError",
        NEVER + "  # MatReadError",
        MAT + "::test_attacks_are_refused_in_one_line_naming_the_file",
    ),
    _guard(
        "mat_six_cameras",
        _SYSU_PY,
        " or cams.size != 6:",
        ":",
        MAT + "::test_attacks_are_refused_in_one_line_naming_the_file",
    ),
    _guard(
        "mat_camera_cells",
        _SYSU_PY,
        "if not (isinstance(per_id, np.ndarray) and per_id.dtype == object):",
        "if False:",
        MAT + "::test_attacks_are_refused_in_one_line_naming_the_file",
    ),
    _guard(
        "mat_index_kinds",
        _SYSU_PY,
        'if perm.dtype.kind not in "iuf" or perm.ndim > 2:',
        "if False:",
        MAT + "::test_attacks_are_refused_in_one_line_naming_the_file",
    ),
    _guard(
        "mat_index_values",
        _SYSU_PY,
        "    if not (np.isfinite(perm).all()",
        "    if False and (np.isfinite(perm).all()",
        MAT + "::test_attacks_are_refused_in_one_line_naming_the_file",
    ),
    _guard(
        "mat_picks_within_folder",
        _SYSU_PY,
        "if min(indices) < 1 or max(indices) > len(files):",
        "if False:",
        MAT + "::test_indices_the_copy_does_not_have_are_refused_naming_the_file",
    ),
    # ---- images
    _guard(
        "pixel_limit",
        _LOADER_PY,
        "if limit is not None and img.width * img.height > limit:",
        "if False:",
        IMAGES + "::test_a_decompression_bomb_is_refused_from_its_header",
    ),
    _guard(
        "pixel_limit_pil",
        _LOADER_PY,
        "if limit is not None and img.width * img.height > limit:",
        "if limit is not None and img.width * img.height > 2 * limit:",
        IMAGES + "::test_a_bomb_through_pil_is_refused_at_pillows_limit",
        "the limit relaxed to Pillow's own 2x",
    ),
    _guard(
        "animation_first_frame",
        _LOADER_PY,
        ' or getattr(img, "is_animated", False):',
        ":",
        IMAGES + "::test_an_animation_gives_its_first_frame",
    ),
    _guard(
        "sixteen_bit_pil",
        _LOADER_PY,
        'if img.mode.startswith("I;16"):',
        "if False:",
        IMAGES + "::test_every_mode_becomes_8_bit_rgb",
    ),
    _guard(
        "no_fixed_range_modes",
        _LOADER_PY,
        'if img.mode in ("I", "F"):',
        "if False:",
        IMAGES + "::test_32_bit_pixels_of_no_fixed_range_are_refused",
    ),
    _guard(
        "empty_file",
        _LOADER_PY,
        "    if not data:\n",
        "    if False:\n",
        IMAGES + "::test_damaged_files_are_one_line_naming_the_file",
    ),
    _guard(
        "image_path_quoted",
        _LOADER_PY,
        'f"cannot decode image {str(path)!r}: {reason}"',
        "f\"cannot decode image '{path}': {reason}\"",
        IMAGES + "::test_damaged_files_are_one_line_naming_the_file",
    ),
    _guard(
        "decoder_errors",
        _LOADER_PY,
        "except Exception as err:  # torchvision raises",
        NEVER + "  # torchvision",
        IMAGES + "::test_damaged_files_are_one_line_naming_the_file",
    ),
)


def location(mutant: Mutant) -> str:
    """``file:line`` of the guard's snippet in the tree."""
    text = (ROOT / mutant.path).read_text()
    return f"{mutant.path}:{text[: text.index(mutant.old)].count(chr(10)) + 1}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="guards to check (default: all)")
    parser.add_argument("--list", action="store_true", help="list the guards and exit")
    args = parser.parse_args(argv)
    if args.list:
        for guard in GUARDS:
            print(f"{guard.name:28s} {location(guard):34s} {guard.old.strip()[:60]!r}  [{guard.tests[0]}]")
        return 0
    results = run(args.names or None, mutants=GUARDS)
    survivors = [name for name, caught in results.items() if caught is None]
    caught = f"{len(results) - len(survivors)}/{len(results)} guards caught"
    print(caught + f"; survived: {survivors}" * bool(survivors))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
