import ast
import json
import warnings
from pathlib import Path

import pytest

from conftest import shared, write
from hmtc_bench.data import DataError, RepairWarning, UnseenLabelWarning, load_dataset
from hmtc_bench.data.formats import detect_format, read_folder
from hmtc_bench.data.toolkit import DecodeWarning

TAXONOMY = "Root\tA\tB\nA\tA1\tA2\nB\tB1\n"


def _lines(records):
    return "".join(json.dumps(r) + "\n" for r in records)


def _docs(n, key_text="token", key_label="label", tokens=True):
    labels = [["A", "A1"], ["A", "A2"], ["B", "B1"], ["A", "A1", "B", "B1"]]
    out = []
    for i in range(n):
        text = f"doc {i} words about {' '.join(labels[i % 4])}"
        out.append({key_text: text.split() if tokens else text, key_label: labels[i % 4]})
    return out


def hiagm_folder(tmp_path, files):
    write(tmp_path / "toy.taxonomy", TAXONOMY)
    for name, text in files.items():
        write(tmp_path / name, text)
    return tmp_path


def test_hiagm_train_dev_test_token_lists(tmp_path):
    folder = hiagm_folder(tmp_path, {"toy_train.json": _lines(_docs(20)),
                                     "toy_val.json": _lines(_docs(5)),
                                     "toy_test.json": _lines(_docs(6))})
    assert detect_format(folder) == "hiagm"
    data = read_folder(folder)
    assert (len(data.train), len(data.dev), len(data.test)) == (20, 5, 6)
    assert data.train.texts[0] == "doc 0 words about A A1"
    assert data.hierarchy.decode(data.train.Y[3]) == [["A", "B", "A1", "B1"]]
    assert data.info["split"] == "given train/dev/test files"


def test_doc_token_variant_plain_text_and_dev_drawn(tmp_path):
    docs = _docs(30, "doc_token", "doc_label", tokens=False)
    folder = hiagm_folder(tmp_path, {"x_train.json": _lines(docs),
                                     "x_test.json": _lines(docs[:4])})
    data = read_folder(folder, seed=3)
    assert len(data.train) + len(data.dev) == 30 and len(data.dev) == 3
    assert "seed 3" in data.info["split"]
    again = read_folder(folder, seed=3)
    assert again.content_hash == data.content_hash


def test_single_file_split_is_recorded(tmp_path):
    folder = hiagm_folder(tmp_path, {"all.json": _lines(_docs(50))})
    data = read_folder(folder)
    assert (len(data.train), len(data.dev), len(data.test)) == (36, 4, 10)
    assert data.info["split_seed"] == 0


def test_repair_warns_or_strict_refuses(tmp_path):
    docs = [{"token": "some text", "label": ["A1"]}, {"token": "more", "label": ["B", "B1"]}] * 5
    folder = hiagm_folder(tmp_path, {"all.json": _lines(docs)})
    with pytest.warns(RepairWarning, match="added .* missing ancestor labels"):
        data = read_folder(folder)
    assert data.hierarchy.decode(data.train.Y[:1]) in ([["A", "A1"]], [["B", "B1"]])
    with pytest.raises(DataError, match="not closed under ancestors"):
        read_folder(folder, strict=True)


@pytest.mark.parametrize("bad_line, message", [
    ('{"token": "x", "label": ["A"]', r"line 3: malformed JSON"),
    ('{"token": "x", "label": ["Z9"]}', r"line 3: label 'Z9' is not in the hierarchy"),
    ('{"token": "  ", "label": ["A"]}', r"line 3: empty text"),
    ('{"token": [], "label": ["A"]}', r"line 3: empty text"),
    ('{"text": "x", "label": ["A"]}', r"line 3: expected keys token/label"),
    ('{"token": "x", "label": []}', r"line 3: document has no labels"),
    ('["token", "label"]', r"line 3: expected a JSON object"),
])
def test_bad_lines_name_file_and_line(tmp_path, bad_line, message):
    good = _lines(_docs(2))
    folder = hiagm_folder(tmp_path, {"all.json": good + bad_line + "\n" + _lines(_docs(8))})
    with pytest.raises(DataError, match=message) as err:
        read_folder(folder)
    assert "all.json" in str(err.value)


def test_non_utf8_replaced_with_count_or_refused(tmp_path):
    body = _lines(_docs(9)).encode() + b'{"token": "caf\xe9 bad", "label": ["A"]}\n'
    folder = hiagm_folder(tmp_path, {"all.json": body})
    with pytest.warns(DecodeWarning, match="1 lines had invalid UTF-8"):
        data = read_folder(folder)
    texts = data.train.texts + data.dev.texts + data.test.texts
    assert "caf\ufffd bad" in texts
    with pytest.raises(DataError, match=r"line 10: invalid UTF-8"):
        read_folder(folder, strict=True)


def test_empty_split_is_an_error(tmp_path):
    folder = hiagm_folder(tmp_path, {"t_train.json": _lines(_docs(5)), "t_test.json": ""})
    with pytest.raises(DataError, match="test split is empty"):
        read_folder(folder)


def test_generic_jsonl_and_csv_paths(tmp_path):
    jsonl = tmp_path / "j"
    rows = [{"id": f"d{i}", "text": f"text {i}",
             "labels": ["Sci/Physics"] if i % 2 else [["Arts", "Music"], "Sci/Bio"]}
            for i in range(12)]
    write(jsonl / "train.jsonl", _lines(rows))
    # test documents of their own: an id repeated across splits is refused (test_data_faults)
    write(jsonl / "test.jsonl", _lines([{**r, "id": f"t{r['id']}"} for r in rows[:3]]))
    assert detect_format(jsonl) == "paths"
    data = read_folder(jsonl)
    assert set(data.hierarchy.labels) == {"Sci", "Arts", "Physics", "Music", "Bio"}
    assert data.hierarchy.level("Music") == 2
    csv_dir = tmp_path / "c"
    write(csv_dir / "data.csv", "id,text,labels\n" + "".join(
        f"d{i},\"hello, world {i}\",Sci/Physics;Arts/Music\n" for i in range(20)))
    data = read_folder(csv_dir)
    assert len(data.train) + len(data.dev) + len(data.test) == 20
    assert data.hierarchy.decode(data.test.Y[:1]) == [["Sci", "Arts", "Physics", "Music"]]


def test_csv_errors(tmp_path):
    write(tmp_path / "data.csv", "id,body\n1,x\n")
    with pytest.raises(DataError,
                       match=r"data.csv, line 1: missing CSV columns \['labels', 'text'\]"):
        read_folder(tmp_path)
    write(tmp_path / "data.csv", "id,text,labels\n1,hello,A/B\n2,,A/B\n")
    with pytest.raises(DataError, match="line 3: empty text"):
        read_folder(tmp_path)


def test_unknown_folder_and_name(tmp_path):
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(DataError, match="unrecognised dataset format"):
        read_folder(tmp_path)
    with pytest.raises(ValueError, match="did you mean synthetic"):
        load_dataset("synthetc")


def test_real_rcv1_dev_as_is():
    folder = shared("rcv1-v2-dev")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shared files are closed and valid UTF-8
        with pytest.warns(UnseenLabelWarning, match=r"3 labels occur in dev or test but never"):
            data = load_dataset(str(folder))
    card = data.card()
    assert card["labels_unseen_in_train"] == 3  # C32, C331, E143: in dev or test only
    assert sum(card["documents"].values()) == 2316
    assert card["labels_per_level"] == {1: 4, 2: 55, 3: 43, 4: 1}
    assert card["labels_per_document"] == pytest.approx(3.20, abs=0.01)
    assert card["multi_path_share"] == pytest.approx(726 / 2316, abs=1e-3)
    assert "research" in card["licence"]


def data_import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of ``hmtc_bench.data`` it imports, from the source of every module
    under ``root`` (the ``hmtc_bench/data`` folder), imports inside functions included."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}, line {node.lineno}: relative import"
                if node.module in modules:
                    targets.add(node.module)
                targets |= {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names} & set(modules)
        graph[name] = targets - {name}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_data_modules_import_no_circle():
    import hmtc_bench.data
    graph = data_import_graph(Path(hmtc_bench.data.__file__).parent)
    assert "hmtc_bench.data.formats.hiagm" in graph["hmtc_bench.data.formats"]
    assert "hmtc_bench.data.toolkit" in graph["hmtc_bench.data.formats.hiagm"]
    assert import_cycle(graph) is None, " -> ".join(import_cycle(graph))
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    formats = {m for m in graph if m.startswith("hmtc_bench.data.formats")}
    assert not graph["hmtc_bench.data.toolkit"] & formats  # the toolkit imports no format
