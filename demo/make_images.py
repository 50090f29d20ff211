"""Draw the demo images (run once; the PNG/JPEG files are committed)."""

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent / "images"


def lighthouse() -> Image.Image:
    image = Image.new("RGB", (320, 240), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 170, 320, 240), fill=(30, 80, 160))
    draw.polygon([(140, 170), (180, 170), (172, 60), (148, 60)], fill=(240, 240, 240))
    for y in (80, 110, 140):
        draw.rectangle((146, y, 176, y + 12), fill=(200, 30, 30))
    draw.rectangle((145, 40, 175, 60), fill=(250, 220, 60))
    draw.polygon([(140, 40), (180, 40), (160, 22)], fill=(60, 60, 60))
    return image


def fruit_bowl() -> Image.Image:
    image = Image.new("RGB", (320, 240), (250, 240, 220))
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 120, 260, 220), fill=(150, 90, 40))
    for box, colour in [((90, 90, 150, 150), (220, 30, 30)), ((140, 80, 200, 140), (250, 200, 0)),
                        ((180, 95, 240, 155), (60, 170, 60))]:
        draw.ellipse(box, fill=colour)
    return image


def bar_chart() -> Image.Image:
    image = Image.new("RGB", (320, 240), "white")
    draw = ImageDraw.Draw(image)
    draw.line((40, 200, 300, 200), fill="black", width=2)
    draw.line((40, 20, 40, 200), fill="black", width=2)
    for i, height in enumerate((60, 120, 90, 160)):
        draw.rectangle((60 + i * 60, 200 - height, 100 + i * 60, 200), fill=(70, 110, 200))
        draw.text((72 + i * 60, 205), f"Q{i + 1}", fill="black")
    draw.text((110, 5), "Sales 2024", fill="black")
    return image


def street_sign() -> Image.Image:
    image = Image.new("RGB", (240, 240), (90, 90, 90))
    draw = ImageDraw.Draw(image)
    draw.regular_polygon((120, 110, 80), 8, fill=(200, 20, 20))
    draw.text((100, 104), "STOP", fill="white")
    draw.rectangle((116, 190, 124, 240), fill=(160, 160, 160))
    return image


def sunset() -> Image.Image:
    image = Image.new("RGB", (400, 260))
    pixels = image.load()
    for y in range(260):
        for x in range(400):
            pixels[x, y] = (255 - y // 3, 120 + (x * y) % 50, 60 + y // 2) if y < 170 else (
                20 + (x * 7 + y * 3) % 40, 40, 90 + (x + y) % 30)
    ImageDraw.Draw(image).ellipse((170, 120, 230, 180), fill=(255, 200, 80))
    return image


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for name, draw in [("lighthouse.png", lighthouse), ("fruit_bowl.png", fruit_bowl),
                       ("bar_chart.png", bar_chart), ("street_sign.png", street_sign)]:
        draw().save(HERE / name, optimize=True)
    sunset().save(HERE / "sunset.jpg", quality=85)
