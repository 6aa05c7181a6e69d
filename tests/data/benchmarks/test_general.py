"""Tests of data/benchmarks/general.py on tiny parquet fixtures in the published schemas."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data import benchmarks
from data.example import Example
from tests.data.benchmarks.fixtures import assert_examples_equal, encode, tiny_image, write_image

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
MMMU_SCHEMA = pa.schema(
    [("id", pa.string()), ("question", pa.string()), ("options", pa.string()),
     ("explanation", pa.string())]
    + [(f"image_{k}", IMAGE) for k in range(1, 8)]
    + [("img_type", pa.string()), ("answer", pa.string()), ("topic_difficulty", pa.string()),
       ("question_type", pa.string()), ("subfield", pa.string())])


def _mmmu_row(qid, question, options, answer, question_type, images):
  row = {"id": qid, "question": question, "options": options, "explanation": "",
         "img_type": "['Tables']", "answer": answer, "topic_difficulty": "Easy",
         "question_type": question_type, "subfield": "Financial Accounting"}
  for k in range(1, 8):
    image = images.get(k)
    row[f"image_{k}"] = None if image is None else {"bytes": encode(image), "path": f"{k}.png"}
  return row


def test_mmmu(tmp_path):
  a, b, c = tiny_image(1), tiny_image(2, 9, 4), tiny_image(3)
  rows = {
      "Accounting": [
          _mmmu_row("validation_Accounting_1", "<image 1> and <image 2>: which is larger?",
                    "['$6', '$7', \"It's equal\"]", "B", "multiple-choice", {1: a, 3: b}),
          _mmmu_row("validation_Accounting_2", "What is the total in <image 1>?", "[]", "42",
                    "open", {1: c})],
      "Art_Theory": [_mmmu_row("validation_Art_Theory_1", "Name the style of <image 1>.",
                               "['Baroque', 'Gothic']", "?", "multiple-choice", {1: a})],
  }
  for subject, subject_rows in rows.items():
    (tmp_path / subject).mkdir()
    for split in ("validation", "dev"):
      pq.write_table(pa.Table.from_pylist(subject_rows, schema=MMMU_SCHEMA),
                     tmp_path / subject / f"{split}-00000-of-00001.parquet")

  def meta(qid, subject, question_type, choices):
    return {"benchmark": "mmmu", "id": qid, "subject": subject,
            "subfield": "Financial Accounting", "topic_difficulty": "Easy",
            "question_type": question_type, "img_type": "['Tables']", "explanation": "",
            "choices": choices}

  want = [
      Example(uid="mmmu/validation_Accounting_1", label="general",
              question="<image 1> and <image 2>: which is larger?", images=(a, b), gold="B",
              meta=meta("validation_Accounting_1", "Accounting", "multiple-choice",
                        ["$6", "$7", "It's equal"])),
      Example(uid="mmmu/validation_Accounting_2", label="general",
              question="What is the total in <image 1>?", images=(c,), gold="42",
              meta=meta("validation_Accounting_2", "Accounting", "open", [])),
      Example(uid="mmmu/validation_Art_Theory_1", label="general",
              question="Name the style of <image 1>.", images=(a,), gold=None,
              meta=meta("validation_Art_Theory_1", "Art_Theory", "multiple-choice",
                        ["Baroque", "Gothic"])),
  ]
  assert_examples_equal(list(benchmarks.read_benchmark("mmmu", tmp_path)), want)
  assert len(list(benchmarks.read_benchmark("mmmu", tmp_path, "dev", limit=2))) == 2
  with pytest.raises(FileNotFoundError, match="test-"):
    list(benchmarks.read_benchmark("mmmu", tmp_path, "test"))

  rows["Accounting"][1]["options"] = "not a list ["
  pq.write_table(pa.Table.from_pylist(rows["Accounting"], schema=MMMU_SCHEMA),
                 tmp_path / "Accounting" / "validation-00000-of-00001.parquet")
  with pytest.raises(benchmarks.BenchmarkFormatError,
                     match="validation-00000-of-00001.parquet: record at row 1: options"):
    list(benchmarks.read_benchmark("mmmu", tmp_path))


MATHVISTA_SCHEMA = pa.schema([
    ("pid", pa.string()), ("question", pa.string()), ("image", pa.string()),
    ("decoded_image", IMAGE), ("choices", pa.list_(pa.string())), ("unit", pa.string()),
    ("precision", pa.float64()), ("answer", pa.string()), ("question_type", pa.string()),
    ("answer_type", pa.string()),
    ("metadata", pa.struct([("category", pa.string()), ("img_height", pa.int64()),
                            ("skills", pa.list_(pa.string())), ("split", pa.string())])),
    ("query", pa.string())])


def test_mathvista(tmp_path):
  first = tiny_image(5)
  second = write_image(tmp_path / "images" / "2.jpg", 6)
  metadata = {"category": "math-targeted-vqa", "img_height": 5, "skills": ["arithmetic"],
              "split": "testmini"}
  rows = [
      {"pid": "1", "question": "Which bar is tallest?", "image": "images/1.jpg",
       "decoded_image": {"bytes": encode(first), "path": "1.jpg"}, "choices": ["red", "blue"],
       "unit": None, "precision": None, "answer": "blue", "question_type": "multi_choice",
       "answer_type": "text", "metadata": metadata,
       "query": "Hint: Please answer with the option letter.\nQuestion: Which bar is tallest?"},
      {"pid": "2", "question": "What is the length?", "image": "images/2.jpg",
       "decoded_image": None, "choices": None, "unit": "cm", "precision": 1.0, "answer": "2.5",
       "question_type": "free_form", "answer_type": "float", "metadata": metadata, "query": ""},
  ]
  (tmp_path / "data").mkdir()
  pq.write_table(pa.Table.from_pylist(rows, schema=MATHVISTA_SCHEMA),
                 tmp_path / "data" / "testmini-00000-of-00001.parquet")
  want = [
      Example(uid="mathvista/testmini/1", label="general", question=rows[0]["query"],
              images=(first,), gold="blue",
              meta={"benchmark": "mathvista", "pid": "1", "question": "Which bar is tallest?",
                    "choices": ["red", "blue"], "unit": None, "precision": None,
                    "question_type": "multi_choice", "answer_type": "text",
                    "metadata": metadata}),
      Example(uid="mathvista/testmini/2", label="general", question="What is the length?",
              images=(second,), gold="2.5",
              meta={"benchmark": "mathvista", "pid": "2", "question": "What is the length?",
                    "choices": None, "unit": "cm", "precision": 1.0,
                    "question_type": "free_form", "answer_type": "float",
                    "metadata": metadata}),
  ]
  assert_examples_equal(list(benchmarks.read_benchmark("mathvista", tmp_path)), want)

  (tmp_path / "images" / "2.jpg").unlink()
  with pytest.raises(benchmarks.BenchmarkFormatError, match="record at row 1: image file"):
    list(benchmarks.read_benchmark("mathvista", tmp_path))
  (tmp_path / "data" / "testmini-00000-of-00001.parquet").write_bytes(b"PAR1 garbage")
  with pytest.raises(benchmarks.BenchmarkFormatError, match="not a readable parquet file"):
    list(benchmarks.read_benchmark("mathvista", tmp_path))
