"""The Metric-2 rubric: the Step-Video-T2V report's four dimensions, each scored 1 (worst) to 5 (best),
with every level described in English (the report's wording) and in Simplified Chinese. Annotators see
it beside the scoring grid and in the overlay one key away; it is data, so the page and any export read
the same text."""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = (5, 4, 3, 2, 1)


@dataclass(frozen=True)
class Dimension:
    key: str
    title_en: str
    title_zh: str
    levels: dict[int, tuple[str, str]]  # score -> (English, Simplified Chinese)

    def title(self, language: str) -> str:
        return self.title_zh if is_chinese(language) else self.title_en

    def describe(self, score: int, language: str) -> str:
        english, chinese = self.levels[score]
        return chinese if is_chinese(language) else english


RUBRIC: list[Dimension] = [
    Dimension(
        key="instruction_following",
        title_en="Instruction following",
        title_zh="指令遵循",
        levels={
            5: (
                "The video is fully consistent with the prompt, with all elements and details generated "
                "accurately and complex scenes expressed flawlessly.",
                "视频与提示词完全一致，所有元素和细节均生成准确，复杂场景的表达完美无瑕。",
            ),
            4: (
                "The video is generally consistent with the prompt, with slight discrepancies in some minor "
                "details.",
                "视频与提示词总体一致，个别次要细节略有出入。",
            ),
            3: (
                "The video mostly meets the prompt's requirements, but there are noticeable deviations in "
                "several details or in core content.",
                "视频基本符合提示词的要求，但在若干细节或核心内容上存在明显偏差。",
            ),
            2: (
                "The video is clearly inconsistent with the prompt, with significant omissions of detail or "
                "an overall deviation.",
                "视频与提示词明显不一致，存在重大细节遗漏或整体偏离。",
            ),
            1: (
                "The video is completely inconsistent with the prompt: major scenes or subjects are wrong or "
                "missing.",
                "视频与提示词完全不一致：主要场景或主体错误或缺失。",
            ),
        },
    ),
    Dimension(
        key="motion_smoothness",
        title_en="Motion smoothness",
        title_zh="运动流畅度",
        levels={
            5: (
                "Motion is smooth and natural; all movements and transitions flow seamlessly.",
                "运动流畅自然，所有动作和过渡衔接无缝。",
            ),
            4: (
                "Motion is generally smooth, with occasional slightly unnatural moments in some scenes.",
                "运动总体流畅，部分场景偶尔有轻微不自然之处。",
            ),
            3: (
                "Motion has slight unnatural aspects or stutters that do not seriously affect viewing.",
                "运动有轻微的不自然或卡顿，但不严重影响观看。",
            ),
            2: (
                "Motion is unnatural, with frequent stutters that make smooth viewing difficult.",
                "运动不自然，卡顿频繁，难以流畅观看。",
            ),
            1: (
                "Motion is severely unnatural, with constant, obvious stutters; the video cannot be watched "
                "smoothly.",
                "运动严重不自然，持续出现明显卡顿，视频无法流畅观看。",
            ),
        },
    ),
    Dimension(
        key="physical_plausibility",
        title_en="Physical plausibility",
        title_zh="物理合理性",
        levels={
            5: (
                "All object interactions and movements obey real-world physics, with accurate lighting, "
                "shadows and collisions, and smooth motion.",
                "所有物体的交互和运动都符合真实世界的物理规律，光照、阴影和碰撞准确，运动流畅。",
            ),
            4: (
                "Most physical behaviour is plausible, with occasional minor unnatural collisions or lighting "
                "that do not affect the overall effect.",
                "大部分物理表现合理，偶有轻微不自然的碰撞或光照，但不影响整体效果。",
            ),
            3: (
                "Several object motions, lighting effects or interactions conflict with physics, but the main "
                "actions remain somewhat plausible.",
                "若干物体的运动、光照效果或交互与物理规律相冲突，但主要动作仍有一定的合理性。",
            ),
            2: (
                "Physical behaviour is unrealistic; lighting or interactions violate physics and the scene "
                "looks unnatural.",
                "物理表现不真实，光照或交互违背物理规律，场景看起来不自然。",
            ),
            1: (
                "Physical behaviour is completely wrong; interactions or lighting are badly distorted and the "
                "scene is hard to understand.",
                "物理表现完全错误，交互或光照严重失真，场景难以理解。",
            ),
        },
    ),
    Dimension(
        key="aesthetic_appeal",
        title_en="Aesthetic appeal",
        title_zh="美学吸引力",
        levels={
            5: (
                "Highly captivating and deeply impressive, with strong artistic value or visual appeal.",
                "极具吸引力，令人印象深刻，具有很强的艺术价值或视觉吸引力。",
            ),
            4: (
                "Pleasant and engaging, capturing attention, with some artistic value.",
                "令人愉悦、引人入胜，能够吸引注意力，具有一定的艺术价值。",
            ),
            3: (
                "Reasonably engaging and somewhat attractive, but visually ordinary and lacking originality.",
                "尚能引起兴趣，有一定吸引力，但视觉上较为普通，缺乏原创性。",
            ),
            2: (
                "Average, lacking appeal, and may be tiring to watch.",
                "表现一般，缺乏吸引力，看久了可能令人疲倦。",
            ),
            1: (
                "Unpleasant, without visual appeal, uncomfortable to watch.",
                "令人不快，毫无视觉吸引力，观看时令人不适。",
            ),
        },
    ),
]

# The keys that select a dimension row on the annotator's page, in rubric order.
DIMENSION_KEYS = ("a", "s", "d", "f")


def is_chinese(language: str) -> bool:
    return language.lower().startswith("zh")


def dimension_title(key: str, language: str) -> str:
    """A rubric dimension's title in the page's language (the key itself for an unknown one)."""
    return next((d.title(language) for d in RUBRIC if d.key == key), key)


def rubric_for_display(language: str) -> list[dict]:
    """The rubric as rows for a page: each dimension with its key, its title and level texts in the active
    language first and the other language second, levels from 5 down to 1."""
    chinese_first = is_chinese(language)
    rows = []
    for dimension, key in zip(RUBRIC, DIMENSION_KEYS, strict=True):
        titles = (dimension.title_zh, dimension.title_en)
        rows.append(
            {
                "key": dimension.key,
                "shortcut": key,
                "title": titles[0] if chinese_first else titles[1],
                "other_title": titles[1] if chinese_first else titles[0],
                "title_lang": "zh-Hans" if chinese_first else "en",
                "other_lang": "en" if chinese_first else "zh-Hans",
                "levels": [
                    {
                        "score": score,
                        "text": dimension.levels[score][1 if chinese_first else 0],
                        "other_text": dimension.levels[score][0 if chinese_first else 1],
                    }
                    for score in LEVELS
                ],
            }
        )
    return rows
