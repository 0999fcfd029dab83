import numpy as np
import pytest

from cxr_desktop.core.labels import (
    FINDINGS,
    URGENT_FINDING,
    UnknownFindingError,
    canonical_finding,
    multi_hot,
)


def test_canonical_order_and_urgent_finding():
    assert len(FINDINGS) == 14
    assert FINDINGS[0] == "Atelectasis" and FINDINGS[1] == "Cardiomegaly" and FINDINGS[-1] == "Hernia"
    assert FINDINGS[12] == "Pleural_Thickening"
    assert URGENT_FINDING == "Cardiomegaly"


@pytest.mark.parametrize("spelling", ["Pleural Thickening", "pleural_thickening", " Pleural  Thickening "])
def test_pleural_thickening_spellings(spelling):
    assert canonical_finding(spelling) == "Pleural_Thickening"


def test_unknown_finding_is_refused():
    with pytest.raises(UnknownFindingError, match="Pneumonitis"):
        canonical_finding("Pneumonitis")


def test_multi_hot_from_nih_labels():
    row = multi_hot("Cardiomegaly|Effusion")
    assert row.dtype == np.float32
    assert row.tolist() == [0, 1, 1] + [0] * 11
    assert multi_hot("No Finding").sum() == 0
    assert multi_hot(["Hernia", "Pleural Thickening"]).nonzero()[0].tolist() == [12, 13]
