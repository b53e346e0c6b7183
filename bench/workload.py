"""A fixed synthetic clinical-text workload of mixed lengths (seeded: the same texts every run)."""

from __future__ import annotations

import random

_FINDINGS = [
    "chest pain radiating to the left arm", "ST elevation in the inferior leads", "elevated troponin",
    "a mass in the right upper lobe", "weight loss over three months", "hepatomegaly on ultrasound",
    "bloody diarrhoea and abdominal cramps", "elevated lipase", "generalised tonic-clonic seizures",
    "left-sided weakness and aphasia", "tremor and rigidity", "fever and productive cough",
    "metastatic lesions in the liver", "colonoscopy showing ulceration", "atrial fibrillation with rapid response",
    "headache with photophobia", "jaundice and pruritus", "shortness of breath on exertion",
]
_CONTEXT = [
    "The patient is a {age}-year-old {sex} presenting with {f}.", "Examination revealed {f}.",
    "Laboratory studies showed {f}.", "Imaging demonstrated {f}.", "There was no history of {f}.",
    "Follow-up at {n} weeks confirmed {f}.", "Treatment was started for {f}.",
]
# Sentences per text: short notes, typical abstracts and long reports (truncated at the model's max length).
_LENGTH_MIX = [(1, 3, 0.35), (4, 10, 0.45), (12, 25, 0.20)]


def clinical_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        low, high = rng.choices([(a, b) for a, b, _ in _LENGTH_MIX], weights=[w for *_, w in _LENGTH_MIX])[0]
        sentences = [
            rng.choice(_CONTEXT).format(age=rng.randint(18, 90), sex=rng.choice(["man", "woman"]),
                                        f=rng.choice(_FINDINGS), n=rng.randint(2, 12))
            for _ in range(rng.randint(low, high))
        ]
        texts.append(" ".join(sentences))
    return texts
