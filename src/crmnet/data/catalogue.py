r"""The data catalogue: every public file crmnet knows, named once.

For each file: where it comes from (a GitHub repository pinned to a full commit hash, or a Zenodo record),
how it is verified (sha256, md5 from Zenodo's records API, or the git blob id), where it lies under a data
directory (the layout mirrors the shared data directory), what its values are (``role``: measured
expression, a model's predictions, or a model's weights) and how to read it. ``crmnet download`` fetches
by :data:`SOURCES`, ``crmnet evaluate`` resolves :data:`TEST_SETS` and :data:`PEERS`, ``crmnet report``
orders its tables by :data:`TEST_SETS`, and ``crmnet prepare`` refuses a catalogued prediction file as
training measurements (:func:`catalogued`).

Checksums:

* ``sha256``: the file's sha256 (for the data files: that of the copies in the shared data directory).
* ``git-blob``: the id git gives the file, ``sha1(b"blob <size>\0" + content)`` — what GitHub shows for a
  file at a commit, so a released file is pinned without anyone having to download it first.
* Zenodo files: the ``md5:`` checksum its records API lists.

Layout under a data directory ``DIR``: ``vaishnav2022/test/…``, ``vaishnav2022/peer_predictions/…``,
``legnet2023/…``, ``dream2022/…`` (data), ``models/<origin>/…`` (released weights as published), ``checkpoints/<name>.pt``
(the crmnet checkpoints ``crmnet download NAME`` imports them into), ``zenodo<record>/<key>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

VAISHNAV_REPO, VAISHNAV_COMMIT = "1edv/evolution", "bf4a41983a82ac81b3ef60fa33fc0e253760c73d"
LEGNET_REPO, LEGNET_COMMIT = "autosome-ru/LegNet", "63773bb04a85dea33bdbf2e2350f7483cc2c96b5"
Role = Literal["measured", "predicted", "model"]


@dataclass(frozen=True)
class GithubFile:
    """A file pinned to a commit: ``{raw}/{repo}/{commit}/{path}`` → ``DIR/{dest}``.

    algorithm: ``sha256`` or ``git-blob`` (see the module docstring); size in bytes when known; role: what
    the file holds (``measured``, ``predicted`` or ``model``).
    """

    repo: str
    commit: str
    path: str
    dest: str
    algorithm: str
    digest: str
    size: int | None
    role: Role


@dataclass(frozen=True)
class Source:
    """Something ``crmnet download NAME`` can fetch.

    zenodo_record: a Zenodo record id whose files are listed by the records API; zenodo_keys: the file keys
    to take from it (empty: all). github: pinned GitHub files. hook: ``"module:function"`` called after the
    download as ``function(download_dir, out_dir, overwrite) -> list[Path]`` (imported only then).
    checkpoint: import the (single) downloaded model file as ``DIR/checkpoints/<name>.pt`` with
    ``crmnet.zoo.importer.import_model`` once it is verified.
    """

    description: str
    zenodo_record: str | None = None
    zenodo_keys: tuple[str, ...] = ()
    github: tuple[GithubFile, ...] = ()
    hook: str | None = None
    hook_out: str | None = None
    checkpoint: bool = False


@dataclass(frozen=True)
class TestSet:
    """A registered test set: its file under the data directory and the column of raw sequences.

    sequence_column: the raw sequences a model encodes (as :func:`crmnet.data.readers.read_records` picks
    it); medium: ``complex`` (YPD) or ``defined`` (SC-Ura).
    """

    name: str
    path: str
    sequence_column: str
    medium: str
    description: str


def _vaishnav(path: str, dest: str, sha256: str, size: int, role: Role = "measured") -> GithubFile:
    return GithubFile(VAISHNAV_REPO, VAISHNAV_COMMIT, f"manuscript_code/model/{path}", f"vaishnav2022/{dest}",
                      "sha256", sha256, size, role)


_TEST_FILES = (
    _vaishnav("reproduce_test_data_performance/Native_complex.csv", "test/Native_complex.csv",
              "59d81b20739815108de4ecf095f78a96042685ee14ed32b95d3ae37242f569b0", 562658),
    _vaishnav("reproduce_test_data_performance/Random_complex.csv", "test/Random_complex.csv",
              "d14fd0c396b1ff3687ad956f9163b1ae344c340fc5b9af79e99f2da818cae305", 446804),
    _vaishnav("results_summary/HQ_testdata.csv", "test/Random_complex_raw.csv",
              "a926d66254dc9d9c9e6a08e93bf74d3d2de7195579e7c54835ebe6680290540d", 721597),
    _vaishnav("results_summary/Random_testdata_complex_media.txt", "test/HQ_testdata_complex.txt",
              "094961bd5f207958306d663123f3150a201566bba9f8eb0b2924dd5e3bd693d6", 427196),
    _vaishnav("reproduce_test_data_performance/Native_defined.csv", "test/Native_defined.csv",
              "87722d2accaa1a0543b2258e56bd37c71d4832bd24a8c5231df836bcb2417643", 564919),
    _vaishnav("reproduce_test_data_performance/Random_defined.csv", "test/Random_defined.csv",
              "f76404dc7dd50a0dfc24a08cd6c509d8ddcc15c67dcea4340be4c96673dbc6f8", 1932203),
)

TEST_SETS: dict[str, TestSet] = {
    t.name: t
    for t in (
        TestSet("complex-native", "vaishnav2022/test/Native_complex.csv", "sequence", "complex",
                "native yeast promoter fragments, complex medium"),
        TestSet("complex-random", "vaishnav2022/test/Random_complex_raw.csv", "0", "complex",
                "high-quality random promoters, complex medium (raw variable-length sequences)"),
        TestSet("defined-native", "vaishnav2022/test/Native_defined.csv", "sequence", "defined",
                "native yeast promoter fragments, defined medium"),
        TestSet("defined-random", "vaishnav2022/test/Random_defined.csv", "seq110", "defined",
                "random promoters, defined medium"),
    )
}

# Published peer predictions: model label → the file tag in Vaishnav et al.'s results_summary names, and
# the test sets each was published for (the benchmarks were run on the complex medium only).
_VAISHNAV_PEERS = {
    "Vaishnav transformer": ("tpu", ("complex", "defined")),
    "Vaishnav CNN": ("gpu", ("complex", "defined")),
    "DeepSEA (adapted)": ("DeepSEA", ("complex",)),
    "DanQ (adapted)": ("DanQ", ("complex",)),
    "DeepATT (adapted)": ("DeepAtt", ("complex",)),
}
_PEER_SHA256 = {  # dest name → (sha256, size)
    "Native_complex_tpu_model.csv": ("8bf354fca3c8db3e291a37735e4c4ee22f372a207d724993f72812a11f482aed", 562886),
    "Native_complex_gpu_model.csv": ("8df07be722d4311de89f4477a5a360fe7571fce7935b0055e84b23662e4f37d4", 562720),
    "Native_complex_DeepSEA_model.csv": ("2dfe214c34dbd20e47a835b240d5b3070a1956db128d3cdbd640502a05b78273", 562397),
    "Native_complex_DanQ_model.csv": ("bce30c144d72ed985b8a22510591ffd5da55329846067b46eb45e2a6bb1ceb80", 562453),
    "Native_complex_DeepAtt_model.csv": ("ef65efe4203720cf7026af3483ae1cd549e82dfc40604b453238666ee5e655d0", 562481),
    "Random_complex_tpu_model.csv": ("58b73a0f27ee3dffa528cb6adc20adb7a69a63f3ffebc833221ed8ee87ebc65f", 446997),
    "Random_complex_gpu_model.csv": ("7280a7dc48611d111c9d65a79447ac900663a6f4bea9dc58b8b414881f5d030b", 446922),
    "Random_complex_DeepSEA_model.csv": ("9a91be563a4bd5014a6f831c265781db0558b20be7883fb200ab903098d3bbe0", 446728),
    "Random_complex_DanQ_model.csv": ("7ac4dbbcc426bfcd8fdc3df94bd33a7c181b5e9bf6fce635310820d03a98cc48", 446837),
    "Random_complex_DeepAtt_model.csv": ("695c78fb2a05081a77899776e47814b2f06b0ebac7c069526382bffee3cb4974", 446843),
    "Native_defined_tpu_model.csv": ("1c985dd57d9ff61e0a66272c0ecaf89d42659608b9c84e4b8abb3649a840241c", 570396),
    "Native_defined_gpu_model.csv": ("ff061f472723b45537a5681b1a26ffb0fd69b717a01bad60780c62e88db34fcd", 570098),
    "Random_defined_tpu_model.csv": ("48ef0b0dbac16eeff5e38328b39d81f7af6b912d313a9983a0ee50d67d4b715d", 800763),
    "Random_defined_gpu_model.csv": ("deabdb4c17e26fd8e675903f3e281d078091a42d9721cf71578ec70a2be3d764", 800422),
}


def _peer_source(origin: str, medium: str, tag: str) -> str:
    """The results_summary name of a peer file (the defined-medium ones carry a suffix)."""
    return f"{origin}_test_{tag}_model" + ("_defined_media" if medium == "defined" else "") + ".csv"


def _vaishnav_peers() -> tuple[dict[str, dict[str, str]], tuple[GithubFile, ...]]:
    """Model label → {test name → file under the data directory}, and the pinned files themselves."""
    peers: dict[str, dict[str, str]] = {}
    files = []
    for label, (tag, media) in _VAISHNAV_PEERS.items():
        for name, test in TEST_SETS.items():
            if test.medium not in media:
                continue
            origin = name.split("-")[1].capitalize()
            dest = f"{origin}_{test.medium}_{tag}_model.csv"
            peers.setdefault(label, {})[name] = f"vaishnav2022/peer_predictions/{dest}"
            files.append(_vaishnav(f"results_summary/{_peer_source(origin, test.medium, tag)}",
                                   f"peer_predictions/{dest}", *_PEER_SHA256[dest], role="predicted"))
    return peers, tuple(files)


PEERS, _PEER_FILES = _vaishnav_peers()
_LEGNET_FILES = tuple(
    GithubFile(LEGNET_REPO, LEGNET_COMMIT, f"data/output/{medium}_Native.txt", f"legnet2023/{medium}_Native.txt",
               "sha256", sha, size, "predicted")
    for medium, sha, size in (
        ("complex", "92ab1bef5bd36463dd8d4cf31f1f0362ad746f81b51b27138505799a5fb3fc1c", 508123),
        ("defined", "9b2ce39126b28af319b1336132aa2a52000c0ce820af9bef8df042fd4a02b419", 514697),
    )
)
# LegNet's prediction TSVs are headerless: sequence<TAB>prediction, joined to the test set by sequence.
PEERS["LegNet"] = {f"{f.dest.split('/')[1].split('_')[0]}-native": f.dest for f in _LEGNET_FILES}


# The Random Promoter DREAM Challenge 2022 (Rafi et al. 2025): the organisers' repository, every file pinned by
# its git blob id (the labelled test set and the SNV subset are larger than the shared copy holds; sizes None).
DREAM_REPO, DREAM_COMMIT = "de-Boer-Lab/random-promoter-dream-challenge-2022", "f7b2e197f673319aaae3ef460b7f9980f74304af"
_DREAM_BLOBS = {  # path under data/ (LICENSE: the repository's) → (git blob id, size)
    "filtered_test_data_with_MAUDE_expression.txt": ("06b57f89b3de2514b65c290d22444b81855794d8", None),
    "test_subset_ids/high_exp_seqs.csv": ("95322919fb121a5e1103f914c8d763440958531f", 138018),
    "test_subset_ids/low_exp_seqs.csv": ("6e0285685f26813bfe36d08744cb2439e148cd3b", 141135),
    "test_subset_ids/yeast_seqs.csv": ("1a085426d528756a0d90d29fbac43a94a34ed614", 141464),
    "test_subset_ids/all_random_seqs.csv": ("4e39ed9cbb563f4de12b24066eae4f626a1654fc", 858758),
    "test_subset_ids/challenging_seqs.csv": ("ddf24dd53e95c21599b4f188fe654214722465d9", 303214),
    "test_subset_ids/all_SNVs_seqs.csv": ("be83edb2a5ec77737c564e5581632c5df7c6779e", None),
    "test_subset_ids/motif_perturbation_seqs.csv": ("f572ac5455864548a22e19980cb7e34f2f1617ea", 978811),
    "test_subset_ids/motif_tiling_seqs.csv": ("e3c444a4de9f76d87617e27f7a5ba41e57d4ba01", 706063),
    "public_leaderboard_ids/high_exp_indices.json": ("597d0be54eaa7a90a65e992e3809e9ce631e828d", 2574),
    "public_leaderboard_ids/low_exp_indices.json": ("ded7772e96ebfb758f4947c869dc05ffcd04e0cb", 2770),
    "public_leaderboard_ids/yeast_exp_indices.json": ("466de7c9401df90953974dbbf7c25cde82516f68", 5837),
    "public_leaderboard_ids/random_exp_indices.json": ("270d5c71a3eee1b1970d49766d9293eb7394b65b", 20701),
    "public_leaderboard_ids/challenging_exp_indices.json": ("1f16c102a447621217b2371e3dcd196345bb35a6", 5409),
    "public_leaderboard_ids/SNVs_exp_indices.json": ("0784d656a32ac3ef59ae098953747c899951f731", 256491),
    "public_leaderboard_ids/motif_perturbation_exp_indices.json": ("3a82a08d64c5d99ba45aa1a934bad88be64966cb", 18346),
    "public_leaderboard_ids/motif_tiling_exp_indices.json": ("45230dbffc92c8bdb5e0b69f0e16dd4a17b738f9", 14639),
    "public_leaderboard_ids/ground.json": ("ead09468feb81d4f0ee4f9d863c89554cb34e357", 252964),
    "plasmid.json": ("46b65f5aeab9ba9db720a4a885774d655fc15ddc", 8296),
    "demo_train.txt": ("7a9a0981a10c42b876984debea82bed8eaa6b904", 760902),
    "LICENSE": ("21adfb83169ba179d2e4be0084e5dc49b1dcb6bf", 1068),
}
DREAM_FILES = tuple(
    GithubFile(DREAM_REPO, DREAM_COMMIT, path if path == "LICENSE" else f"data/{path}", f"dream2022/{path}",
               "git-blob", blob, size, "measured")
    for path, (blob, size) in _DREAM_BLOBS.items()
)
# The 6,739,258 training promoters (Chardonnay grape must) as the challenge distributed them, on Zenodo.
DREAM_ZENODO, DREAM_TRAIN_KEY = "10633252", "train_sequences.txt"


def _model(repo: str, commit: str, path: str, dest: str, blob: str, size: int | None = None) -> GithubFile:
    return GithubFile(repo, commit, path, dest, "git-blob", blob, size, "model")


MODEL_FILES: dict[str, GithubFile] = {
    "vaishnav-transformer-complex": _model(VAISHNAV_REPO, VAISHNAV_COMMIT, "app/models/Glu/fitness_function.h5",
                                           "models/vaishnav2022/Glu/fitness_function.h5",
                                           "8b7c2aa853358df5680e918e1ee2ef344b70b6e4"),
    "vaishnav-transformer-defined": _model(VAISHNAV_REPO, VAISHNAV_COMMIT, "app/models/SC_Ura/fitness_function.h5",
                                           "models/vaishnav2022/SC_Ura/fitness_function.h5",
                                           "96d16f59b9e79a5ed137660ce536e502be2aa75c"),
    "deepatt-complex": _model(VAISHNAV_REPO, VAISHNAV_COMMIT,
                              "manuscript_code/model/benchmarking_models/DeepAtt_model.h5",
                              "models/vaishnav2022/deepatt_complex/DeepAtt_model.h5",
                              "076f89100ebe36948808176d9dd7c2f29ee1b034", 375928),
    "legnet-complex": _model(LEGNET_REPO, LEGNET_COMMIT, "models/complex/model_300.pth",
                             "models/legnet2023/complex/model_300.pth", "6cffcf0df0d59e8e567559e5469925209a2e2e6b"),
    "legnet-defined": _model(LEGNET_REPO, LEGNET_COMMIT, "models/defined/model_150.pth",
                             "models/legnet2023/defined/model_150.pth", "0183e7f230f2b0bcde464ec6704e9cac6546b7c3"),
    "legnet-dream2022": _model(LEGNET_REPO, LEGNET_COMMIT, "models/dream2022/model_80.pth",
                               "models/legnet2023/dream2022/model_80.pth", "7d314e2f2f9bb1aba4a5a91d4598f687df12e3ce"),
}

SOURCES: dict[str, Source] = {
    "complex": Source("Vaishnav et al. complex-medium (YPD) training data, ~31 M rows (Zenodo 4436477)",
                      zenodo_record="4436477", zenodo_keys=("complex_media_training_data_Glu.txt",)),
    "defined": Source("Vaishnav et al. defined-medium (SC-Ura) training data, ~21 M rows (Zenodo 4436477)",
                      zenodo_record="4436477", zenodo_keys=("defined_media_training_data_SC_Ura.txt",)),
    "test-sets": Source(f"Vaishnav et al. test sets ({VAISHNAV_REPO} @ {VAISHNAV_COMMIT[:7]})", github=_TEST_FILES),
    "peer-predictions": Source(f"published peer predictions on the test sets ({VAISHNAV_REPO} @ "
                               f"{VAISHNAV_COMMIT[:7]})", github=_PEER_FILES),
    "legnet": Source(f"LegNet predictions on the native test sets ({LEGNET_REPO} @ {LEGNET_COMMIT[:7]})",
                     github=_LEGNET_FILES),
    "dream2022": Source(f"DREAM 2022: labelled test set, subsets, public leaderboard, plasmid ({DREAM_REPO} @ "
                        f"{DREAM_COMMIT[:7]}) and the 6.74 M training promoters (Zenodo {DREAM_ZENODO})",
                        github=DREAM_FILES, zenodo_record=DREAM_ZENODO, zenodo_keys=(DREAM_TRAIN_KEY,)),
    "dream2022-test": Source(f"DREAM 2022 test files only ({DREAM_REPO} @ {DREAM_COMMIT[:7]})", github=DREAM_FILES),
    "crmnet-authors": Source("the CRMnet authors' trained Keras models (Zenodo 7375243), imported as checkpoints",
                             zenodo_record="7375243", hook="crmnet.zoo.keras:import_downloaded",
                             hook_out="crmnet_authors"),
    **{name: Source(f"released model {f.repo}/{f.path} @ {f.commit[:7]}, imported as checkpoints/{name}.pt",
                    github=(f,), checkpoint=True)
       for name, f in MODEL_FILES.items()},
}


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path``, else ``$CRMNET_DATA_DIR``, else ``./data``."""
    return Path(path or os.environ.get("CRMNET_DATA_DIR") or "data")


def checkpoint_path(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Where ``crmnet download NAME`` puts the imported checkpoint of a released model."""
    return data_dir(directory) / "checkpoints" / f"{name}.pt"


def catalogued(sha256: str) -> GithubFile | None:
    """The catalogued data file with this sha256 (None when it is not one of ours)."""
    for source in SOURCES.values():
        for f in source.github:
            if f.algorithm == "sha256" and f.digest == sha256:
                return f
    return None


def check_measurements(path: str | os.PathLike, sha256: str, option: str = "--role predicted") -> None:
    """Refuse a catalogued prediction file read as measurements (its values are a model's, not the assay's).

    A headerless ``sequence<TAB>value`` file does not say what its values are; LegNet's published
    prediction TSVs look exactly like Vaishnav's training files. ``option`` names how to proceed anyway.
    """
    from crmnet.errors import InputError

    known = catalogued(sha256)
    if known is not None and known.role == "predicted":
        raise InputError(path, f"this is {known.repo}'s published predictions ({known.dest} @ {known.commit[:7]}), "
                               f"not measured expression; use it as --predictions, or pass {option} to use "
                               "predictions as targets on purpose")
