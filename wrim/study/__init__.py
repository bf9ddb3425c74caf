"""Studies over seeds: a study file of variants x seeds, a resumable runner (local workers or SLURM), and
``compare``: grouped runs, paired differences with their 95 % intervals and p-values, tables and a forest plot."""

from wrim.study.compare import compare_runs as compare_runs
from wrim.study.compare import compare_study as compare_study
from wrim.study.compare import load_runs as load_runs
from wrim.study.runner import Job as Job
from wrim.study.runner import check_one_code_version as check_one_code_version
from wrim.study.runner import plan as plan
from wrim.study.runner import run_job as run_job
from wrim.study.runner import run_local as run_local
from wrim.study.runner import submit_slurm as submit_slurm
from wrim.study.spec import Comparison as Comparison
from wrim.study.spec import StudySpec as StudySpec
from wrim.study.spec import Variant as Variant
from wrim.study.spec import load_study as load_study

__all__ = [
    "Comparison",
    "Job",
    "StudySpec",
    "Variant",
    "check_one_code_version",
    "compare_runs",
    "compare_study",
    "load_runs",
    "load_study",
    "plan",
    "run_job",
    "run_local",
    "submit_slurm",
]
