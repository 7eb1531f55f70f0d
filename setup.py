"""ltv_spark: customer lifetime value on Spark, Delta, torch and Horovod."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildWithConf(build_py):
    """Ship conf/*.yaml inside the package (ltv_spark/conf/), so that an installed wheel, on a
    cluster or on Databricks, reads the same configs as a checkout."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "ltv_spark" / "conf"
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted((HERE / "conf").glob("*.yaml")):
            self.copy_file(str(path), str(target / path.name))


def direct_requirements() -> list[str]:
    """The pinned direct dependencies (requirements/base.in), minus test and build tools."""
    dev_only = {"pytest", "chispa", "ruff", "setuptools", "wheel"}
    lines = (HERE / "requirements" / "base.in").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    return [pin for pin in pins if pin.split("==")[0] not in dev_only]


setup(
    name="ltv_spark",
    version="0.1.0",
    description="Distributed customer lifetime value prediction: Spark, Delta, a Transformer, Horovod.",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.12",
    packages=find_packages(include=["ltv_spark", "ltv_spark.*"]),
    install_requires=direct_requirements(),
    extras_require={"horovod": ["horovod==0.28.1"]},
    entry_points={"console_scripts": ["ltv=ltv_spark.cli:main"]},
    cmdclass={"build_py": BuildWithConf},
)
