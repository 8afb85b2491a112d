import json
from urllib.request import urlopen


def locate(ip):
    with urlopen(f"https://geo.example.com/{ip}") as response:
        return json.load(response)


def locate_bounded(ip):
    with urlopen(f"https://geo.example.com/{ip}", timeout=3) as response:
        return json.load(response)


def warm_cache():
    # run by a cron job, not by a view
    return urlopen("https://geo.example.com/all").read()
