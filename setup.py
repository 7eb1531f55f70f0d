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


# What the wheel asks of the environment it is installed into. Ranges, not pins: on a Databricks ML
# runtime (15.4 / 16.4 LTS) pip must keep the runtime's own Spark, torch, numpy, pandas and pyarrow
# (tests/test_packaging.py resolves the wheel against each runtime's versions). The exact versions
# of the local environment live in requirements/lock.txt. Spark itself (pyspark, and delta-spark,
# whose Python half Databricks builds in) is an extra, for machines that have no Spark.
INSTALL_REQUIRES = [
    "numpy>=1.23.5,<2",  # petastorm uses np.unicode_
    "pandas>=1.5.3,<2.3",  # pyspark 3.5's pandas UDFs
    "pyarrow>=14.0.1,<16",  # petastorm needs the legacy ParquetDataset (gone in 16)
    "torch>=2.3,<2.14",
    "petastorm>=0.12.1,<0.13",
    "deltalake>=1.6,<2",  # delta-rs: tables without the JVM connector
    "pyyaml>=6.0,<7",
    "lifetimes>=0.11.3,<0.12",
    "scipy>=1.10,<1.14",
    "scikit-learn>=1.3,<1.6",
    "duckdb>=1.1,<2",
    "matplotlib>=3.7,<3.10",
    "cloudpickle>=2.2,<4",
    "psutil>=5.9,<7",
]
# MLflow likewise: every Databricks ML runtime ships it (15.4 LTS ML: 2.13.1, whose API this code
# keeps to: aliases, models from code); elsewhere the "mlflow" extra brings it.
EXTRAS_REQUIRE = {
    "spark": ["pyspark>=3.5.3,<3.6", "delta-spark>=3.3.3,<3.4"],
    "mlflow": ["mlflow-skinny>=2.13.1,<4", "sqlalchemy>=2,<3", "alembic>=1.13,<2"],
    "horovod": ["horovod==0.28.1"],
}


setup(
    name="ltv_spark",
    version="0.1.0",
    description="Distributed customer lifetime value prediction: Spark, Delta, a Transformer, Horovod.",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["ltv_spark", "ltv_spark.*"]),
    package_data={"ltv_spark": ["jvm/*.java"]},  # the s3a log store's source (ltv_spark.jvm_jars builds it)
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["ltv=ltv_spark.cli:main"]},
    cmdclass={"build_py": BuildWithConf},
)
